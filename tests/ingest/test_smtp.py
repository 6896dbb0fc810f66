"""The SMTP protocol over real sockets, with real clients (smtplib, raw bytes), and a
recording handler in place of Kafka (the broker path is in tests/e2e)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest import policy
from ingest.handler import RawMailHandler
from ingest.smtp import Envelope, Session, SmtpLimits, SmtpServer
from schemas.records import RawMailEnvelope

DOMAINS = ["tmpmail.test"]
LIMIT = 64 * 1024


class RecordingSink:
    def __init__(self) -> None:
        self.records: list[tuple[RawMailEnvelope, bytes]] = []
        self.fail = False
        self.delay_s = 0.0

    async def publish(self, records: list[tuple[RawMailEnvelope, bytes]]) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise TimeoutError("broker did not answer")
        self.records.extend(records)


@dataclass
class Running:
    port: int
    server: SmtpServer
    sink: RecordingSink

    def client(self, **kw: object) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=10, **kw)  # type: ignore[arg-type]

    @property
    def bodies(self) -> list[bytes]:
        """The body of each recorded record, without our Received: line."""
        return [_strip_received(value) for _, value in self.sink.records]


def _strip_received(value: bytes) -> bytes:
    assert value.startswith(b"Received: ")
    end = 0
    while True:  # the Received: line and its folded continuation lines
        end = value.index(b"\r\n", end) + 2
        if value[end : end + 1] not in (b"\t", b" "):
            return value[end:]


@pytest.fixture
async def smtp_server(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    servers: list[asyncio.base_events.Server] = []
    smtps: list[SmtpServer] = []

    async def start(tls: ssl.SSLContext | None = None, **limits: object) -> Running:
        sink = RecordingSink()
        values: dict[str, object] = {"max_message_bytes": LIMIT, **limits}
        smtp_limits = SmtpLimits(**values)  # type: ignore[arg-type]
        handler = RawMailHandler(
            sink,
            domains=DOMAINS,
            hostname="mx.test",
            max_recipients=smtp_limits.max_recipients,
            recipient_budget_bytes=smtp_limits.recipient_budget_bytes,
        )
        smtp = SmtpServer(
            handler, hostname="mx.test", domains=DOMAINS, limits=smtp_limits, tls_context=tls
        )
        loop = asyncio.get_running_loop()
        server = await loop.create_server(smtp, "127.0.0.1", 0)
        smtp.start(loop)
        servers.append(server)
        smtps.append(smtp)
        port = server.sockets[0].getsockname()[1]
        return Running(port, smtp, sink)

    yield start
    for smtp in smtps:
        smtp.stop()
        smtp.close_all()
    for server in servers:
        server.close()
        await server.wait_closed()


async def _talk(port: int, payload: bytes, *, until: bytes = b"221", wait_s: float = 10) -> bytes:
    """Send ``payload`` in one write; read until ``until`` appears or the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        greeting = await reader.readline()
        assert greeting.startswith(b"220 ")
        writer.write(payload)
        await writer.drain()
        received = b""
        async with asyncio.timeout(wait_s):
            while until not in received:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
        return received
    finally:
        writer.close()


def _codes(replies: bytes) -> list[str]:
    """The final line of each reply, in order."""
    return [line for line in replies.decode().split("\r\n") if line[3:4] == " "]


# --- ESMTP, spoken exactly ----------------------------------------------------------------
async def test_ehlo_advertises_the_extensions(smtp_server: Callable[..., object]) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]

    def check() -> None:
        with running.client() as client:
            code, _ = client.ehlo()
            assert code == 250
            for extension in ("size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"):
                assert client.has_extn(extension), extension
            assert client.esmtp_features["size"] == str(LIMIT)
            assert not client.has_extn("starttls")  # no certificate set

    await asyncio.to_thread(check)


async def test_pipelined_commands_get_their_replies_in_order(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    payload = (
        b"EHLO client.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<x@other.test>\r\n"
        b"RCPT TO:<bob@tmpmail.test>\r\nDATA\r\nSubject: one\r\n\r\nbody\r\n.\r\n"
        b"MAIL FROM:<>\r\nRCPT TO:<carol@tmpmail.test>\r\nDATA\r\nSubject: two\r\n\r\n.\r\n"
        b"NOOP\r\nQUIT\r\n"
    )
    replies = _codes(await _talk(running.port, payload))
    assert [r[:9] for r in replies] == [
        "250 HELP",
        "250 2.1.0",
        "550 5.7.1",
        "250 2.1.5",
        "354 End d",
        "250 2.0.0",
        "250 2.1.0",
        "250 2.1.5",
        "354 End d",
        "250 2.0.0",
        "250 2.0.0",
        "221 2.0.0",
    ]
    assert [env.recipient for env, _ in running.sink.records] == [
        "bob@tmpmail.test",
        "carol@tmpmail.test",
    ]


async def test_every_reply_after_ehlo_has_an_enhanced_status_code(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    payload = b"".join(
        line + b"\r\n"
        for line in (
            b"EHLO client.test",
            b"HELP",
            b"VRFY bob",
            b"EXPN list",
            b"FOO bar",
            b"RCPT TO:<a@tmpmail.test>",
            b"DATA",
            b"MAIL FROM:<a@example.test> SIZE=99999999",
            b"MAIL FROM:<a@example.test> FOO=1",
            b"MAIL FROM:a-without-brackets@example.test",
            b"MAIL FROM:<a@example.test>",
            b"RCPT TO:<not an address>",
            b"RCPT TO:<a@tmpmail.test>",
            b"DATA extra",
            b"STARTTLS",
            b"RSET",
            b"NOOP",
            b"QUIT",
        )
    )
    replies = _codes(await _talk(running.port, payload))
    assert len(replies) == 18
    for reply in replies[1:]:
        code, enhanced = reply.split(" ")[:2]
        assert enhanced[0] == code[0] and enhanced.count(".") == 2, reply


async def test_lines_longer_than_998_octets_are_accepted(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    body = b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\nend\r\n"

    def send() -> None:
        with running.client() as client:
            client.sendmail("a@example.test", ["bob@tmpmail.test"], body)

    await asyncio.to_thread(send)
    assert running.bodies == [body]


async def test_dot_stuffing_is_undone_and_bytes_stay_exact(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    body = b".first\r\n..\r\n.\xff\x00 8-bit\r\nmiddle\r\n.\r\nlast"
    # smtplib stuffs dots and ends the data with CRLF.CRLF (adding CRLF if needed)

    def send() -> None:
        with running.client() as client:
            client.ehlo()
            client.sendmail("a@example.test", ["bob@tmpmail.test"], body, ["BODY=8BITMIME"])
            client.sendmail("a@example.test", ["bob@tmpmail.test"], b"")

    await asyncio.to_thread(send)
    assert running.bodies == [body + b"\r\n", b"\r\n"]


async def test_an_empty_data_block_is_a_mail_of_no_bytes(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    payload = b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@tmpmail.test>\r\nDATA\r\n.\r\nQUIT\r\n"
    replies = _codes(await _talk(running.port, payload))
    assert replies[-2].startswith("250 2.0.0") and running.bodies == [b""]


# --- bounded input ------------------------------------------------------------------------
async def test_a_data_line_with_no_end_is_cut_at_the_limit(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    await reader.readline()
    writer.write(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@tmpmail.test>\r\nDATA\r\n")
    chunk = b"y" * 65536
    closed = False
    try:
        for _ in range(64 * 8):  # 32 MiB with no CRLF: 512 times the limit
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        closed = True
    try:
        tail = await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        tail, closed = b"", True  # closed with our unread bytes in its buffer: a reset
    writer.close()
    assert closed or b"552 5.3.4" in tail
    session = next(iter(running.server.sessions), None)
    assert session is None  # the connection was closed: it never held the 32 MiB
    assert running.sink.records == []


async def test_a_mail_over_the_limit_gets_552_and_the_session_goes_on(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    big = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * (2 * LIMIT // 1000)
    announced = b"EHLO c\r\nMAIL FROM:<> SIZE=%d\r\n" % len(big)
    small = b"Subject: small\r\n\r\nok\r\n.\r\n"
    mail = b"MAIL FROM:<>\r\nRCPT TO:<bob@tmpmail.test>\r\nDATA\r\n"
    payload = announced + mail + big + b".\r\n" + mail + small + b"QUIT\r\n"
    replies = [r[:9] for r in _codes(await _talk(running.port, payload))]
    # SIZE announced too much: MAIL is refused; unannounced, the end of DATA is.
    assert replies[1] == "552 5.3.4"
    transaction = ["250 2.1.0", "250 2.1.5", "354 End d"]
    assert replies[2:] == [*transaction, "552 5.3.4", *transaction, "250 2.0.0", "221 2.0.0"]
    assert len(running.sink.records) == 1


async def test_millions_of_empty_lines_are_one_buffer_not_millions_of_objects(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server(max_message_bytes=4 * 1024 * 1024)  # type: ignore[misc]
    body = b"\r\n" * (2 * 1024 * 1024 - 10)

    def send() -> None:
        with running.client() as client:
            client.sendmail("a@example.test", ["bob@tmpmail.test"], body)

    await asyncio.to_thread(send)
    assert running.bodies == [body]


async def test_an_overlong_command_line_gets_500_5_5_2(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server(max_command_bytes=512)  # type: ignore[misc]
    payload = b"EHLO c\r\nMAIL FROM:<" + b"a" * 100_000 + b"@example.test>\r\nNOOP\r\nQUIT\r\n"
    replies = _codes(await _talk(running.port, payload))
    assert [r[:9] for r in replies[1:]] == ["500 5.5.2", "250 2.0.0", "221 2.0.0"]


async def test_recipients_are_limited(smtp_server: Callable[..., object]) -> None:
    running: Running = await smtp_server(max_recipients=3)  # type: ignore[misc]
    rcpts = b"".join(b"RCPT TO:<u%d@tmpmail.test>\r\n" % n for n in range(4))
    replies = _codes(await _talk(running.port, b"EHLO c\r\nMAIL FROM:<>\r\n" + rcpts + b"QUIT\r\n"))
    assert [r[:9] for r in replies[2:6]] == ["250 2.1.5"] * 3 + ["452 4.5.3"]


async def test_size_times_recipients_has_a_budget(smtp_server: Callable[..., object]) -> None:
    running: Running = await smtp_server(recipient_budget_bytes=10_000)  # type: ignore[misc]
    rcpts = b"".join(b"RCPT TO:<u%d@tmpmail.test>\r\n" % n for n in range(3))
    announced = b"EHLO c\r\nMAIL FROM:<> SIZE=4000\r\n" + rcpts + b"RSET\r\nQUIT\r\n"
    replies = _codes(await _talk(running.port, announced))
    assert [r[:9] for r in replies[2:5]] == ["250 2.1.5", "250 2.1.5", "452 4.5.3"]
    # Not announced: the end of DATA is past the budget.
    body = b"Subject: x\r\n\r\n" + b"a" * 4000 + b"\r\n.\r\n"
    unannounced = b"EHLO c\r\nMAIL FROM:<>\r\n" + rcpts + b"DATA\r\n" + body + b"QUIT\r\n"
    replies = _codes(await _talk(running.port, unannounced))
    assert replies[-2].startswith("552 5.3.4") and running.sink.records == []


async def test_bad_envelope_bytes_get_a_permanent_reply(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    payload = (
        b"EHLO c\r\nMAIL FROM:<\xff\xfe@example.test> SMTPUTF8\r\n"
        b"MAIL FROM:<z\xc3\xbc@example.test>\r\n"
        b"MAIL FROM:<z\xc3\xbc@example.test> SMTPUTF8\r\n"
        b"RCPT TO:<\xc3\xbc\xff@tmpmail.test>\r\n"
        b"RCPT TO:<j\xc3\xbcrgen@tmpmail.test>\r\nQUIT\r\n"
    )
    replies = _codes(await _talk(running.port, payload))
    assert [r[:9] for r in replies[1:6]] == [
        "501 5.5.4",
        "553 5.6.7",
        "250 2.1.0",
        "501 5.5.4",
        "250 2.1.5",
    ]


async def test_smtputf8_addresses_from_smtplib(smtp_server: Callable[..., object]) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]

    def send() -> None:
        with running.client() as client:
            client.ehlo()
            client.sendmail(
                "zoë@example.test",
                ["jürgen@tmpmail.test"],
                "Subject: ✉\r\n\r\nhallo".encode(),
                mail_options=["SMTPUTF8", "BODY=8BITMIME"],
            )

    await asyncio.to_thread(send)
    [(envelope, value)] = running.sink.records
    assert (envelope.sender, envelope.recipient) == ("zoë@example.test", "jürgen@tmpmail.test")
    assert b"with UTF8SMTP id" in value


async def test_a_flood_of_bad_commands_closes_the_session(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server(max_bad_commands=5)  # type: ignore[misc]
    received = await _talk(running.port, b"BOGUS\r\n" * 1000, until=b"421")
    replies = _codes(received)
    assert replies[:5] == ["500 5.5.2 Command not recognized"] * 5
    assert replies[5].startswith("421 4.7.0") and len(replies) == 6


async def test_connections_are_limited_per_client_and_overall(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server(  # type: ignore[misc]
        max_connections_per_client=3, max_connections=5
    )
    opened = []
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        assert (await reader.readline()).startswith(b"220 ")
        opened.append(writer)
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    assert (await reader.readline()).startswith(b"421 4.7.0")
    assert await reader.read() == b""
    writer.close()
    for w in opened:
        w.close()
    await asyncio.sleep(0.05)
    assert len(running.server.sessions) == 0


async def test_an_idle_client_and_a_slow_data_are_cut_off(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server(  # type: ignore[misc]
        idle_timeout_s=0.5, data_timeout_s=1.5
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    await reader.readline()
    started = time.monotonic()
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"421 4.4.2")
    assert time.monotonic() - started < 3
    writer.close()

    # A sender that trickles a byte at a time, never idle for long, never finishing.
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    await reader.readline()
    writer.write(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@tmpmail.test>\r\nDATA\r\n")
    started = time.monotonic()
    replies = b""
    async with asyncio.timeout(8):
        while not replies.endswith(b"\r\n") or b"421" not in replies:
            try:
                writer.write(b"x")
                await writer.drain()
            except ConnectionError:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.2)
            except TimeoutError:
                continue
            if not chunk:
                break
            replies += chunk
    assert b"421 4.4.2" in replies
    assert time.monotonic() - started < 5
    writer.close()


async def test_a_broker_failure_answers_451_and_the_session_goes_on(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]
    running.sink.fail = True
    mail = b"MAIL FROM:<>\r\nRCPT TO:<bob@tmpmail.test>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n"
    replies = _codes(await _talk(running.port, b"EHLO c\r\n" + mail + b"NOOP\r\nQUIT\r\n"))
    assert [r[:9] for r in replies[-3:]] == ["451 4.3.0", "250 2.0.0", "221 2.0.0"]


async def test_one_body_is_shared_by_every_recipients_record(
    smtp_server: Callable[..., object],
) -> None:
    running: Running = await smtp_server()  # type: ignore[misc]

    def send() -> None:
        with running.client() as client:
            client.sendmail(
                "a@example.test",
                [f"u{n}@tmpmail.test" for n in range(10)],
                b"Subject: many\r\n\r\nhello",
            )

    await asyncio.to_thread(send)
    values = [value for _, value in running.sink.records]
    assert len(values) == 10 and all(v is values[0] for v in values)
    assert b"\tfor <" not in values[0]  # no recipient learns of the others
    digests = {env.body_sha256 for env, _ in running.sink.records}
    assert len(digests) == 1 and len(digests.pop()) == 64


# --- STARTTLS -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=mx.test", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_starttls_upgrades_and_the_trace_says_esmtps(
    smtp_server: Callable[..., object], tls_files: tuple[Path, Path]
) -> None:
    running: Running = await smtp_server(tls=_server_tls(*tls_files))  # type: ignore[misc]

    def send() -> None:
        client_context = ssl.create_default_context(cafile=str(tls_files[0]))
        client_context.check_hostname = False
        with running.client() as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=client_context)
            client.ehlo()
            assert not client.has_extn("starttls")
            client.sendmail("a@example.test", ["bob@tmpmail.test"], b"Subject: tls\r\n\r\nx")

    await asyncio.to_thread(send)
    [(envelope, value)] = running.sink.records
    assert envelope.tls and b"with ESMTPS id" in value


async def test_commands_pipelined_after_starttls_are_discarded(
    smtp_server: Callable[..., object], tls_files: tuple[Path, Path]
) -> None:
    running: Running = await smtp_server(tls=_server_tls(*tls_files))  # type: ignore[misc]
    await asyncio.to_thread(_starttls_injection, running.port, tls_files[0])


def _starttls_injection(port: int, cert: Path) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.recv(1024)
        sock.sendall(b"EHLO c\r\n")
        time.sleep(0.1)
        sock.recv(4096)
        sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.test>\r\n")
        time.sleep(0.2)
        reply = sock.recv(4096)
        assert reply == b"220 2.0.0 Ready to start TLS\r\n"
        client_context = ssl.create_default_context(cafile=str(cert))
        client_context.check_hostname = False
        tls = client_context.wrap_socket(sock, server_hostname="mx.test")
        tls.sendall(b"MAIL FROM:<a@example.test>\r\n")
        # The plain EHLO is forgotten and the injected MAIL never ran.
        assert tls.recv(4096).startswith(b"503 5.5.1")
        tls.close()
    finally:
        sock.close()


# --- the policy's replies -----------------------------------------------------------------
def test_policy_replies_carry_enhanced_codes() -> None:
    for name in dir(policy):
        value = getattr(policy, name)
        if not isinstance(value, str) or not value[:3].isdigit() or value[3:4] != " ":
            continue
        if value.startswith(("220 {hostname}", "354 ")):
            continue  # the greeting, and the 3xx intermediate reply, take none (RFC 2034)
        enhanced = value.split(" ")[1]
        assert enhanced[0] == value[0] and enhanced.count(".") == 2, name


def test_envelope_and_session_defaults() -> None:
    assert Envelope(mail_from="").rcpt_tos == []
    assert not Session(peer="x").tls
