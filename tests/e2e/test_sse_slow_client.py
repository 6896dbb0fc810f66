"""A live client that stops reading is dropped within the send timeout, on the real stack
and both stores.

The client is a raw socket with a tiny receive buffer (``SO_RCVBUF`` set before it
connects) that reads the response head of ``GET /api/events`` and then nothing. The
server's sends only block once the kernel's buffers (the server's send buffer grows to
``net.ipv4.tcp_wmem``'s maximum) and the transport's are full, so its mail is wide: a
subject and sender of :data:`WIDTH` four-byte characters make each event about 48 KB,
and enough of them are sent to overflow those buffers.

The API is a process of the test's own, with a short ``TMPMAIL_SSE_SEND_TIMEOUT_S``,
one live stream per mailbox (so a freed slot shows as a second stream accepted) and a
hub queue larger than the mail sent (so that the queue's own overflow, which drops a
client too, cannot be what dropped it).
"""

from __future__ import annotations

import asyncio
import base64
import math
import smtplib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from schemas.settings import Settings
from tests.e2e.helpers import ExtraApis, Mailbox, create_mailbox

SEND_TIMEOUT_S = 2.0
SLOW_CLIENT_API = {
    "TMPMAIL_SSE_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S),
    "TMPMAIL_SSE_MAX_PER_MAILBOX": "1",
    "TMPMAIL_SSE_QUEUE_SIZE": "10000",
}
#: Decoded characters of the subject and of the sender's name (the parser keeps 4,096).
WIDTH = 4000
#: What one event carries at least: subject, sender and from_name, four bytes a character.
EVENT_BYTES = 3 * 4 * WIDTH
RECEIVE_BUFFER = 1024
#: How long after the last mail's delivery the drop may take beyond the send timeout.
LATE_S = 5.0


@pytest.fixture(scope="module")
def extra_apis() -> Iterator[ExtraApis]:
    apis = ExtraApis()
    yield apis
    apis.stop_all()


@pytest.fixture
def slow_api(stack: Settings, extra_apis: ExtraApis) -> Settings:
    return extra_apis.get(stack, 2, SLOW_CLIENT_API)


def _words(text: str) -> str:
    """``text`` as folded RFC 2047 words (built here: the email package folds a header
    this long in quadratic time)."""
    step = 12  # 48 bytes of UTF-8, 64 of base64: a word well under 75 characters
    return "\r\n ".join(
        f"=?utf-8?b?{base64.b64encode(text[i : i + step].encode()).decode()}?="
        for i in range(0, len(text), step)
    )


def _wide_mail(to: str, n: int) -> bytes:
    lines = [
        f"From: {_words(chr(0x1F600) * WIDTH)} <wide@example.org>",
        f"To: {to}",
        f"Subject: {n} {_words(chr(0x1F601) * WIDTH)}",
        f"Message-ID: <{uuid.uuid4()}@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "wide",
        "",
    ]
    return "\r\n".join(lines).encode()


def _mails_to_fill_the_buffers() -> int:
    """Enough events to fill the largest send buffer the kernel grows, and a MiB more."""
    most = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return math.ceil((most + 2**20) / EVENT_BYTES)


def _send_wide(stack: Settings, to: str, count: int) -> None:
    with smtplib.SMTP(stack.smtp_host, stack.smtp_port, local_hostname="w.test", timeout=60) as s:
        for n in range(count):
            s.sendmail("wide@example.org", [to], _wide_mail(to, n))


class StalledReader:
    """``GET /api/events`` on a socket with a tiny receive buffer that, once it has the
    response head, reads nothing more until :meth:`drain`."""

    def __init__(self, api: Settings, box: Mailbox) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.sock.settimeout(10)
        self.sock.connect((api.http_host, api.http_port))
        request = (
            f"GET /api/events HTTP/1.1\r\nHost: {api.http_host}:{api.http_port}\r\n"
            f"Authorization: Bearer {box.token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)  # no further than the head
            assert chunk, f"closed before the response head: {head!r}"
            head += chunk
        self.head = head.decode("latin-1")

    def drain(self, timeout_s: float) -> tuple[bytes, bool]:
        """Everything the server still sends, and whether it then closed the stream."""
        received = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                break
            except ConnectionResetError:
                # The kernel reset it: TCP_USER_TIMEOUT (api/main.py) cut a peer that
                # acknowledged nothing for that long. Dropped just the same.
                return received, True
            if not chunk:
                return received, True
            received += chunk
        return received, False

    def close(self) -> None:
        self.sock.close()


async def _newest_seq(client: httpx.AsyncClient, box: Mailbox) -> int:
    response = await client.get("/api/messages", headers=box.auth, params={"limit": 1})
    messages = response.json()["messages"]
    return int(messages[0]["seq"]) if messages else 0


async def _second_stream(client: httpx.AsyncClient, box: Mailbox) -> int:
    """The status of another ``GET /api/events`` of the mailbox (closed at once)."""
    async with client.stream("GET", "/api/events", headers=box.auth) as response:
        return response.status_code


@asynccontextmanager
async def _stalled_and_dropped(
    stack: Settings, api: Settings
) -> AsyncIterator[tuple[StalledReader, int]]:
    """A stalled reader of a new mailbox, its buffers filled with ``count`` events, once
    the server has dropped it (within the send timeout, its slot freed); and ``count``."""
    count = _mails_to_fill_the_buffers()
    async with httpx.AsyncClient(base_url=api.http_url, timeout=30) as client:
        box = await create_mailbox(client)
        reader = await asyncio.to_thread(StalledReader, api, box)
        try:
            assert reader.head.startswith("HTTP/1.1 200"), reader.head
            assert "text/event-stream" in reader.head
            # It holds the mailbox's one live stream.
            assert await _second_stream(client, box) == 429

            await asyncio.to_thread(_send_wide, stack, box.address, count)
            async with asyncio.timeout(60):
                while await _newest_seq(client, box) < count:  # noqa: ASYNC110 - polling
                    await asyncio.sleep(0.1)
            delivered = time.monotonic()  # every event is on its way to the API now

            # Its send timed out: the stream is dropped and its slot freed.
            deadline = delivered + SEND_TIMEOUT_S + LATE_S
            while await _second_stream(client, box) != 200:
                assert time.monotonic() < deadline, (
                    f"still connected {SEND_TIMEOUT_S + LATE_S:.0f}s after the last delivery"
                )
                await asyncio.sleep(0.1)
            yield reader, count
        finally:
            reader.close()
            # Wide mail slows every later query of the FerretDB stand-in (it scans): gone.
            await client.delete("/api/mailbox", headers=box.auth)


async def test_a_client_that_stops_reading_is_dropped_within_the_send_timeout(
    stack: Settings, slow_api: Settings
) -> None:
    async with _stalled_and_dropped(stack, slow_api) as (reader, count):
        # The stream ends short: closed once what was buffered is read, or reset.
        data, closed = await asyncio.to_thread(reader.drain, 30.0)
        assert closed, f"the server kept the stream open ({len(data)} bytes read)"
        events = data.count(b"event: message")
        assert events < count, events


def _server_side_open(api: Settings, client_port: int) -> bool:
    """Whether the API's end of the connection from ``client_port`` is still established."""
    want_local, want_remote = f":{api.http_port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if local.endswith(want_local) and remote.endswith(want_remote):
            return state == "01"  # ESTABLISHED
    return False


async def test_a_dropped_client_that_never_reads_again_leaves_no_socket_behind(
    stack_sqlite: Settings, extra_apis: ExtraApis
) -> None:
    api = extra_apis.get(stack_sqlite, 2, SLOW_CLIENT_API)
    async with _stalled_and_dropped(stack_sqlite, api) as (reader, _count):
        client_port = reader.sock.getsockname()[1]
        deadline = time.monotonic() + SEND_TIMEOUT_S + LATE_S
        while _server_side_open(api, client_port):
            assert time.monotonic() < deadline, "the server still holds the dropped socket"
            await asyncio.sleep(0.2)


async def test_a_client_that_goes_away_frees_its_slot_at_once(
    stack: Settings, slow_api: Settings
) -> None:
    """One live stream per mailbox here: each stream opened after the last one closed is
    accepted, so the server saw each close at once (not at a ping: a send to a peer that
    has gone does nothing in uvicorn; only the request's ``receive`` says so)."""
    async with httpx.AsyncClient(base_url=slow_api.http_url, timeout=30) as client:
        box = await create_mailbox(client)
        try:
            for _ in range(5):
                deadline = time.monotonic() + 2.0
                while (status := await _second_stream(client, box)) != 200:
                    assert status == 429, status
                    assert time.monotonic() < deadline, "a closed stream still holds its slot"
                    await asyncio.sleep(0.05)
        finally:
            await client.delete("/api/mailbox", headers=box.auth)
