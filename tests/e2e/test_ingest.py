"""Ingest on the real stack: real clients, the corpus byte for byte on the topic, abuse with
the process's resident memory read from /proc, and the broker stopped under a sender."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from deploy.procs import PidFile
from schemas.records import RawMailEnvelope
from schemas.settings import Settings
from schemas.topics import RAW_MAIL_TOPIC
from tests.e2e.helpers import create_mailbox, make_mail

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CORPUS_FILES = sorted(
    p
    for p in CORPUS.rglob("*")
    if p.is_file() and p.name not in {"LICENSE", "NOTICE", "README.md", ".gitattributes"}
)
MIB = 1024 * 1024
_QUEUED = re.compile(rb"queued as ([0-9a-f]+)")


# --- helpers ------------------------------------------------------------------------------
class RawTopic:
    """Reads tmpmail.raw-mail.v1 from its current end, by ingest id."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"tmpmail-test-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.max.bytes": 64 * MIB,
                "max.partition.fetch.bytes": 16 * MIB,
            }
        )
        meta = self._consumer.list_topics(RAW_MAIL_TOPIC, timeout=10).topics[RAW_MAIL_TOPIC]
        starts = []
        for partition in meta.partitions:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(RAW_MAIL_TOPIC, partition), timeout=10
            )
            starts.append(TopicPartition(RAW_MAIL_TOPIC, partition, high))
        self._consumer.assign(starts)

    def collect(
        self, ingest_ids: set[str], timeout_s: float = 60, per_id: int = 1
    ) -> dict[str, list[tuple[RawMailEnvelope, bytes]]]:
        """The records of ``ingest_ids`` (``per_id`` of each: one per recipient)."""
        found: dict[str, list[tuple[RawMailEnvelope, bytes]]] = {}

        def complete() -> bool:
            return all(len(found.get(i, ())) >= per_id for i in ingest_ids)

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not complete():
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            envelope = RawMailEnvelope.from_headers(msg.headers())
            if envelope.ingest_id in ingest_ids:
                found.setdefault(envelope.ingest_id, []).append((envelope, msg.value() or b""))
        return found

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def raw_topic(stack_sqlite: Settings) -> Iterator[RawTopic]:
    tail = RawTopic(stack_sqlite)
    yield tail
    tail.close()


_OUR_RECEIVED = re.compile(rb"Received: from [^;]*;\r\n\t[^\r\n]*\r\n")


def _strip_received(value: bytes) -> bytes:
    """The bytes after our Received: line (which has one ';', before its date line)."""
    match = _OUR_RECEIVED.match(value)
    assert match, value[:300]
    return value[match.end() :]


def _ingest_pids(settings: Settings) -> list[int]:
    pids = []
    for path in sorted(settings.run_dir.glob("ingest*.pid")):
        pid = PidFile(path).live_pid()
        if pid is not None:
            pids.append(pid)
    assert pids, f"no live ingest pid file under {settings.run_dir}"
    return pids


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _smtp(settings: Settings, timeout_s: float = 60) -> smtplib.SMTP:
    return smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, local_hostname="client.test", timeout=timeout_s
    )


def _send_for_id(smtp: smtplib.SMTP, rcpts: list[str], data: bytes) -> tuple[int, bytes]:
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail("sender@example.test", ["BODY=8BITMIME"])
    assert code == 250, reply
    for rcpt in rcpts:
        code, reply = smtp.rcpt(rcpt)
        assert code == 250, reply
    return smtp.data(data)


def _crlf(data: bytes) -> bytes:
    """Bare LF line ends as a mail client sends them: CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


# --- real clients -------------------------------------------------------------------------
def test_every_corpus_message_is_accepted_and_intact_on_the_topic(
    stack_sqlite: Settings, raw_topic: RawTopic
) -> None:
    assert len(CORPUS_FILES) >= 170
    sent: dict[str, bytes] = {}
    with _smtp(stack_sqlite) as smtp:
        smtp.ehlo()
        for path in CORPUS_FILES:
            data = _crlf(path.read_bytes())
            code, reply = _send_for_id(smtp, ["corpus@tmpmail.test"], data)
            assert code == 250, (path, reply)
            match = _QUEUED.search(reply)
            assert match, reply
            # smtplib ends the data with CRLF if the file does not; that CRLF is sent.
            sent[match.group(1).decode()] = data if data.endswith(b"\r\n") else data + b"\r\n"
    found = raw_topic.collect(set(sent))
    missing = set(sent) - set(found)
    assert not missing, f"{len(missing)} corpus mails not on the topic"
    for ingest_id, expected in sent.items():
        [(envelope, value)] = found[ingest_id]
        assert _strip_received(value) == expected, ingest_id
        assert envelope.recipient == "corpus@tmpmail.test"


def test_swaks_pipelining_tls_and_an_8bit_body(stack_sqlite: Settings, raw_topic: RawTopic) -> None:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is not installed (.ci/run installs it)"
    body = "Grüße aus Köln, 8-bit ✉".encode()
    ids = []
    for extra in (["--pipeline"], ["--tls"], ["--pipeline", "--tls"]):
        result = subprocess.run(
            [
                swaks,
                "--server",
                f"{stack_sqlite.smtp_host}:{stack_sqlite.smtp_port}",
                "--to",
                "swaks@tmpmail.test",
                "--from",
                "swaks@example.org",
                "--helo",
                "swaks.test",
                "--h-Subject",
                "8-bit",
                "--body",
                "-",
                "--timeout",
                "30",
                *extra,
            ],
            input=body,
            capture_output=True,
            timeout=60,
            check=False,
        )
        out = result.stdout.decode(errors="replace")
        assert result.returncode == 0, out + result.stderr.decode(errors="replace")
        match = _QUEUED.search(result.stdout)
        assert match, out
        ids.append((match.group(1).decode(), "--tls" in extra))
    found = raw_topic.collect({ingest_id for ingest_id, _ in ids})
    for ingest_id, tls in ids:
        [(envelope, value)] = found[ingest_id]
        assert envelope.tls is tls
        assert (b"with ESMTPS id" in value) is tls
        assert body in value


def test_postfix_smtp_source_mails_are_all_accepted(
    stack_sqlite: Settings, raw_topic: RawTopic
) -> None:
    from bench.refs import smtp_source

    tool = smtp_source()
    result = subprocess.run(
        [
            str(tool.path),
            "-s",
            "10",
            "-m",
            "100",
            "-l",
            "5120",
            "-f",
            "source@example.test",
            "-t",
            "smtp-source@tmpmail.test",
            f"{stack_sqlite.smtp_host}:{stack_sqlite.smtp_port}",
        ],
        env=tool.env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")


# --- abuse, with resident memory ----------------------------------------------------------
@dataclass
class Memory:
    before: int
    bound: int


@pytest.fixture
def ingest_memory(stack_sqlite: Settings) -> Iterator[Memory]:
    """Ingest's RSS before the case; after it, it must not have grown past ``bound``
    (about twice the message limit, unless the case says otherwise)."""
    pids = _ingest_pids(stack_sqlite)
    memory = Memory(_rss_bytes(pids), 2 * stack_sqlite.max_message_bytes + 32 * MIB)
    yield memory
    grown = _rss_bytes(pids) - memory.before
    print(f"ingest RSS grew by {grown / MIB:.1f} MiB (bound {memory.bound / MIB:.0f} MiB)")
    assert grown < memory.bound, f"ingest grew by {grown / MIB:.0f} MiB"


def test_a_data_line_with_no_end(stack_sqlite: Settings, ingest_memory: Memory) -> None:
    sock = socket.create_connection((stack_sqlite.smtp_host, stack_sqlite.smtp_port), timeout=30)
    sock.recv(1024)
    sock.sendall(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<abuse@tmpmail.test>\r\nDATA\r\n")
    chunk = b"n" * MIB
    sent = 0
    try:
        for _ in range(96):  # 96 MiB with no CRLF, under a 10 MiB limit
            sock.sendall(chunk)
            sent += 1
    except OSError:
        pass  # closed on us: fine, that is one of the two answers
    replies = b""
    try:
        sock.settimeout(15)
        while chunk := sock.recv(4096):
            replies += chunk
    except OSError:
        pass
    sock.close()
    assert sent < 96 or b"552 5.3.4" in replies or b"421" in replies


def test_millions_of_empty_lines(stack_sqlite: Settings, ingest_memory: Memory) -> None:
    body = b"Subject: empty lines\r\n\r\n" + b"\r\n" * (5 * MIB - 100)  # 5 million lines
    with _smtp(stack_sqlite) as smtp:
        code, reply = _send_for_id(smtp, ["abuse@tmpmail.test"], body)
    assert code == 250, reply


def test_a_hundred_recipients_of_a_large_mail(
    stack_sqlite: Settings, ingest_memory: Memory, raw_topic: RawTopic
) -> None:
    body = b"Subject: big\r\n\r\n" + (b"b" * 998 + b"\r\n") * 1024  # 1 MiB
    rcpts = [f"r{n}@tmpmail.test" for n in range(100)]
    # Python holds the body once; librdkafka copies each record's value until its ack,
    # so what bounds this case is the budget of size x recipients.
    ingest_memory.bound = stack_sqlite.smtp_recipient_budget_bytes + 32 * MIB
    with _smtp(stack_sqlite) as smtp:
        code, reply = _send_for_id(smtp, rcpts, body)
        assert code == 250, reply
        # With SIZE announced, the budget (size x recipients) refuses RCPT early.
        smtp.ehlo()
        code, _ = smtp.mail("a@example.test", [f"SIZE={9 * MIB}"])
        assert code == 250
        codes = [smtp.rcpt(rcpt)[0] for rcpt in rcpts[:30]]
        assert codes.count(250) == 200 * MIB // (9 * MIB) and codes[-1] == 452
        smtp.rset()
    ingest_id = _QUEUED.search(reply)
    assert ingest_id
    found = raw_topic.collect({ingest_id.group(1).decode()}, per_id=len(rcpts))
    assert sorted(env.recipient for env, _ in next(iter(found.values()))) == sorted(rcpts)


def test_hundreds_of_connections_from_one_address(
    stack_sqlite: Settings, ingest_memory: Memory
) -> None:
    socks = []
    try:
        for _ in range(400):
            sock = socket.create_connection(
                (stack_sqlite.smtp_host, stack_sqlite.smtp_port), timeout=10
            )
            socks.append(sock)
        greetings = [sock.recv(128) for sock in socks]
        assert all(g.startswith(b"220 ") for g in greetings)  # the test stack allows 1000
    finally:
        for sock in socks:
            sock.close()
    with _smtp(stack_sqlite) as smtp:
        assert smtp.noop()[0] == 250


def test_a_sender_that_trickles(stack_sqlite: Settings, ingest_memory: Memory) -> None:
    """One byte every 0.5 s: never idle, never done. DATA's own time limit (8 s here) ends it."""
    sock = socket.create_connection((stack_sqlite.smtp_host, stack_sqlite.smtp_port), timeout=5)
    sock.recv(1024)
    sock.sendall(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<abuse@tmpmail.test>\r\nDATA\r\n")
    started = time.monotonic()
    replies = b""
    sock.settimeout(0.5)
    while b"421" not in replies and time.monotonic() - started < 30:
        try:
            sock.sendall(b"x")
        except OSError:
            break
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        replies += chunk
    sock.close()
    assert b"421 4.4.2" in replies
    assert time.monotonic() - started < stack_sqlite.smtp_data_timeout_s + 5


def test_a_flood_of_bad_commands(stack_sqlite: Settings, ingest_memory: Memory) -> None:
    sock = socket.create_connection((stack_sqlite.smtp_host, stack_sqlite.smtp_port), timeout=10)
    sock.recv(1024)
    try:
        sock.sendall(b"NONSENSE " + b"x" * 100 + b"\r\n" * 1 + b"BAD\r\n" * 100_000)
    except OSError:
        pass
    replies = b""
    try:
        while chunk := sock.recv(65536):
            replies += chunk
    except OSError:
        pass
    sock.close()
    assert replies.count(b"500 5.5.2") == stack_sqlite.smtp_max_bad_commands
    assert b"421 4.7.0" in replies


# --- the broker stopped -------------------------------------------------------------------
async def test_broker_stopped_answers_451_and_the_retry_is_stored_once(
    stack_sqlite: Settings,
) -> None:
    kafka = PidFile(stack_sqlite.run_dir / "kafka.pid").live_pid()
    assert kafka is not None
    subject = f"broker stopped {uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack_sqlite.http_url, timeout=30) as client:
        box = await create_mailbox(client)
        mail = make_mail(box.address, subject)

        def send() -> tuple[int, bytes]:
            with _smtp(stack_sqlite) as smtp:
                return _send_for_id(smtp, [box.address], mail)

        os.kill(kafka, signal.SIGSTOP)
        try:
            started = time.monotonic()
            code, reply = await asyncio.to_thread(send)
            took = time.monotonic() - started
        finally:
            os.kill(kafka, signal.SIGCONT)
        assert code == 451 and reply.startswith(b"4.3.0"), reply
        assert took < stack_sqlite.produce_timeout_s + 6

        # The sender retries once the broker is back, until it is accepted.
        async with asyncio.timeout(60):
            while (await asyncio.to_thread(send))[0] != 250:  # noqa: ASYNC110 - a sender's retry
                await asyncio.sleep(1)

        async def listed() -> list[str]:
            response = await client.get("/api/messages", headers=box.auth)
            return [m["subject"] for m in response.json()["messages"]]

        async with asyncio.timeout(60):
            while not await listed():  # noqa: ASYNC110 - polling the API, no event to await
                await asyncio.sleep(0.3)
        await asyncio.sleep(2)  # anything stored twice would show by now
        assert await listed() == [subject]
