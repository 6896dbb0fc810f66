"""Clients for whole-stack tests: real SMTP (smtplib, swaks), real HTTP and SSE, real Kafka."""

from __future__ import annotations

import asyncio
import json
import shutil
import smtplib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from schemas.settings import Settings


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
