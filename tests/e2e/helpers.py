"""Clients for whole-stack tests: real SMTP (smtplib, swaks), real HTTP and SSE, real Kafka."""

from __future__ import annotations

import asyncio
import json
import shutil
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from deploy.health import api_ready
from deploy.launcher import log_tail
from deploy.procs import can_bind, describe_pids, port_holders, spawn, stop_group
from schemas.settings import Settings
from store import MailStore, create_store
from tests.conftest import REPO, TEST_SLOT, stack_environ, stack_settings


@dataclass
class SseEvent:
    id: str | None = None
    event: str | None = None
    data: str = ""

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseStream:
    """Collects events from one open ``/api/events`` response."""

    response: httpx.Response
    events: list[SseEvent] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    async def next_event(self, timeout_s: float = 30.0) -> SseEvent:
        async with asyncio.timeout(timeout_s):
            if self._lines is None:
                self._lines = self.response.aiter_lines()
            current = SseEvent()
            async for line in self._lines:
                if line == "":
                    if current.event or current.data:
                        self.events.append(current)
                        return current
                    current = SseEvent()
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    current.id = value
                elif name == "event":
                    current.event = value
                elif name == "data":
                    current.data = f"{current.data}\n{value}" if current.data else value
            raise AssertionError("event stream ended")

    async def next_message(self, timeout_s: float = 30.0) -> SseEvent:
        """The next ``message`` event, skipping pings and comments."""
        while True:
            event = await self.next_event(timeout_s)
            if event.event == "message":
                return event


@asynccontextmanager
async def open_events(
    client: httpx.AsyncClient, *, token: str | None = None, last_event_id: str | None = None
) -> AsyncIterator[SseStream]:
    headers = {"Accept": "text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream(
        "GET", "/api/events", headers=headers, timeout=httpx.Timeout(60.0, connect=5.0)
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseStream(response)


@dataclass
class Mailbox:
    address: str
    token: str
    cookies: httpx.Cookies

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_mailbox(client: httpx.AsyncClient, **body: str) -> Mailbox:
    response = await client.post("/api/mailboxes", json=body or None)
    assert response.status_code == 201, response.text
    data = response.json()
    return Mailbox(data["address"], data["token"], response.cookies)


def make_mail(
    to: str, subject: str, body: str = "hello", sender: str = "sender@example.org"
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@example.org>"
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def send_raw(
    settings: Settings,
    to: str,
    data: bytes,
    sender: str = "sender@example.org",
    timeout_s: float = 60,
) -> dict[str, Any]:
    """Send exact bytes with smtplib; returns smtplib's refused-recipients dict."""
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, local_hostname="client.test", timeout=timeout_s
    ) as smtp:
        return smtp.sendmail(sender, [to], data)


def send_mail(settings: Settings, to: str, subject: str, body: str = "hello") -> dict[str, Any]:
    """Send one small, well-formed mail with smtplib."""
    return send_raw(settings, to, make_mail(to, subject, body))


def send_with_swaks(settings: Settings, to: str, subject: str) -> subprocess.CompletedProcess[str]:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is not installed (apt-get install swaks; .ci/run installs it)"
    return subprocess.run(
        [
            swaks,
            "--server",
            f"{settings.smtp_host}:{settings.smtp_port}",
            "--to",
            to,
            "--from",
            "swaks@example.org",
            "--helo",
            "swaks.test",
            "--h-Subject",
            subject,
            "--body",
            "sent by swaks",
            "--timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TopicTail:
    """Reads a topic from its current end: start it before the action, then ``wait_for``."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"tmpmail-test-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
        # Start at the end offsets as they are now, so every record produced later is seen.
        starts = []
        for partition in meta.partitions:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            starts.append(TopicPartition(topic, partition, high))
        self._consumer.assign(starts)

    def wait_for(
        self, match: Callable[[bytes | None, bytes], bool], timeout_s: float = 30.0
    ) -> tuple[bytes | None, bytes]:
        key, value, _partition = self.wait_with_partition(match, timeout_s)
        return key, value

    def wait_with_partition(
        self, match: Callable[[bytes | None, bytes], bool], timeout_s: float = 30.0
    ) -> tuple[bytes | None, bytes, int]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            value = msg.value() or b""
            if match(msg.key(), value):
                return msg.key(), value, msg.partition() or 0
        raise AssertionError(f"no matching record within {timeout_s}s")

    def close(self) -> None:
        self._consumer.close()


# --- waiting on the API ------------------------------------------------------------------
async def wait_for_messages(
    client: httpx.AsyncClient, box: Mailbox, count: int, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Poll ``box``'s list (newest first) until it holds at least ``count`` messages."""
    async with asyncio.timeout(timeout_s):
        while True:
            response = await client.get("/api/messages", headers=box.auth, params={"limit": 100})
            assert response.status_code == 200, response.text
            messages: list[dict[str, Any]] = response.json()["messages"]
            if len(messages) >= count:
                return messages
            await asyncio.sleep(0.1)


def response_fingerprint(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a client can learn from a response, timing aside: status, headers (but the
    date), body. Two responses with one fingerprint tell their requests apart in nothing."""
    headers = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, headers, response.content


# --- the store, read directly --------------------------------------------------------------
@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[MailStore]:
    """The stack's store as its processes see it (for what no API response shows)."""
    store = create_store(settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# --- API processes of a test's own -----------------------------------------------------------
def seconds_as_days(seconds: float) -> str:
    """A ``TMPMAIL_*_DAYS`` value of ``seconds``."""
    return repr(seconds / 86_400)


def extra_api_port(index: int) -> int:
    """The HTTP port of a test's own API process ``index`` (1-9): 18040 + 10 x slot +
    index, clear of every slot's stack (18000 + 10 x slot) and of the other slots' extras."""
    assert 1 <= index <= 9, index
    return 18040 + 10 * TEST_SLOT + index


EXTRA_API_READY_S = 60.0
EXTRA_API_STOP_S = 10.0


@dataclass
class ExtraApi:
    settings: Settings
    #: What it was started with: the store and the overrides.
    config: tuple[str, tuple[tuple[str, str], ...]]
    process: subprocess.Popen[bytes]


class ExtraApis:
    """API processes of a test module's own beside the stack's: the same Kafka and store,
    an HTTP port of their own and settings of their own (short lifetimes, a short send
    timeout...). ``get`` starts one (``tmpmail api``, logging to the stack's log dir, so a
    failed test shows its tail) or returns the one already running with exactly that
    configuration; ``stop_all`` stops them. Use it from a module-scoped fixture."""

    def __init__(self) -> None:
        self._running: dict[int, ExtraApi] = {}

    def get(self, stack: Settings, index: int, overrides: dict[str, str]) -> Settings:
        port = extra_api_port(index)
        config = (stack.store, tuple(sorted(overrides.items())))
        running = self._running.get(port)
        if running is not None:
            if running.config == config and running.process.poll() is None:
                return running.settings
            self.stop(port)
        env = stack_environ(
            TMPMAIL_STORE=stack.store,
            TMPMAIL_HTTP_PORT=str(port),
            PYTHONUNBUFFERED="1",
            **overrides,
        )
        settings = stack_settings(stack.store, env)
        if not can_bind(settings.http_host, port):
            holders = describe_pids(port_holders(port))
            pytest.fail(f"port {port} for a test's own API is taken by {holders}", pytrace=False)
        log = stack.log_dir / f"api-{port}.log"
        process = spawn([sys.executable, "-m", "deploy.cli", "api"], log, env, cwd=REPO)
        self._running[port] = ExtraApi(settings, config, process)
        deadline = time.monotonic() + EXTRA_API_READY_S
        while not api_ready(settings):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop(port)
                pytest.fail(
                    f"the test's own API on port {port} did not become ready:\n{log_tail(log, 40)}",
                    pytrace=False,
                )
            time.sleep(0.1)
        return settings

    def stop(self, port: int) -> None:
        running = self._running.pop(port, None)
        if running is not None:
            stop_group(running.process.pid, EXTRA_API_STOP_S)
            running.process.wait(EXTRA_API_STOP_S)

    def stop_all(self) -> None:
        for port in list(self._running):
            self.stop(port)


async def messages_until_closed(events: SseStream, timeout_s: float) -> list[SseEvent]:
    """The ``message`` events of ``events`` until the server ends the stream, each within
    ``timeout_s`` (a stream that stays open past it raises ``TimeoutError``)."""
    received: list[SseEvent] = []
    while True:
        try:
            received.append(await events.next_message(timeout_s))
        except AssertionError as exc:
            if "event stream ended" not in str(exc):
                raise
            return received
