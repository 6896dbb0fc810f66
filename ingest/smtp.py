"""tmpmail's SMTP server protocol: RFC 5321 with SIZE, 8BITMIME, SMTPUTF8, PIPELINING,
ENHANCEDSTATUSCODES and STARTTLS, on one ``asyncio.Protocol`` per connection.

Why our own and not aiosmtpd's ``SMTP`` class: it walks its own members with
``inspect.getmembers`` on every connection, keeps every DATA line as an object of its
own (a 10 MiB mail of empty lines cost 460 MiB), keeps a line with no end in memory
whatever its length, and runs one coroutine per command. Here:

* **One buffer per connection**, a ``bytearray``. Commands are cut from it at LF; DATA is
  scanned in place for ``CRLF.CRLF``, so memory is one message and what the client has
  pipelined behind it (reading pauses past :data:`PAUSE_READING_AT` while a mail is
  being stored). A DATA past the size limit is discarded as it arrives, keeping only
  the last 4 bytes to find its end; a command line past its limit is skipped.
* **Pipelining**: every complete command in the buffer is answered in order, and the
  replies of one read go out in one write. Commands behind a DATA wait for its reply.
* **STARTTLS** discards whatever was pipelined after it (RFC 3207 section 4.2; the
  plaintext command injection of CVE-2011-0411) and forgets the session's EHLO.
* **No per-command timers**: :class:`SmtpServer` sweeps its sessions once a second for
  idle ones and for a DATA that has taken too long.
* The policy (replies, what we accept) is :mod:`ingest.policy`, pure; what happens to
  an accepted mail is the handler's (:mod:`ingest.handler`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from ingest import policy
from ingest.counters import IngestCounters

log = logging.getLogger(__name__)

#: While a mail is being stored, stop reading once this much more has arrived.
PAUSE_READING_AT = 256 * 1024
#: DATA may run this far past the size limit (dot-stuffing) before it is discarded.
DATA_SLACK = 64 * 1024
#: A DATA over the limit is read and thrown away until its end; past this many times
#: the limit, the connection is closed instead.
DISCARD_FACTOR = 4
SWEEP_INTERVAL_S = 1.0
TLS_HANDSHAKE_TIMEOUT_S = 30.0

_COMMAND, _DATA = 0, 1
_TERMINATOR = b"\r\n.\r\n"


@dataclass(slots=True)
class Session:
    """One connection as the handler sees it."""

    peer: str
    helo: str = ""
    esmtp: bool = False
    tls: bool = False


@dataclass(slots=True)
class Envelope:
    """One mail transaction (MAIL, RCPT..., DATA)."""

    mail_from: str
    smtputf8: bool = False
    declared_size: int | None = None
    body: str = "7BIT"
    rcpt_tos: list[str] = field(default_factory=list)
    content: bytes = b""


class Handler(Protocol):
    """What the session asks about each recipient and hands each complete mail to."""

    def handle_RCPT(self, session: Session, envelope: Envelope, address: str) -> str:
        """Reply for the recipient; on a 250 the handler has appended it to ``rcpt_tos``."""

    async def handle_DATA(self, session: Session, envelope: Envelope) -> str:
        """Reply for the mail in ``envelope.content`` (dot-unstuffed): 250 only once stored."""


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    """Every limit of a session; each is a ``TMPMAIL_SMTP_*`` setting."""

    max_message_bytes: int
    max_recipients: int = 100
    recipient_budget_bytes: int = 200 * 1024 * 1024
    max_command_bytes: int = 2048
    max_bad_commands: int = 10
    max_connections: int = 1000
    max_connections_per_client: int = 20
    idle_timeout_s: float = 300.0
    data_timeout_s: float = 600.0


class SmtpServer:
    """What the sessions of one listening socket share: limits, TLS, counters, and the
    registry that enforces connection limits and sweeps for timeouts."""

    def __init__(
        self,
        handler: Handler,
        *,
        hostname: str,
        domains: list[str],
        limits: SmtpLimits,
        tls_context: ssl.SSLContext | None = None,
        counters: IngestCounters | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handler = handler
        self.hostname = hostname
        self.domains = domains
        self.limits = limits
        self.tls_context = tls_context
        self.counters = counters if counters is not None else IngestCounters()
        self.clock = clock
        self.sessions: set[SmtpSession] = set()
        self._per_client: dict[str, int] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._storing = 0
        self._none_storing = asyncio.Event()
        self._none_storing.set()
        self.greeting = _line(policy.GREETING.format(hostname=hostname))

    def __call__(self) -> SmtpSession:
        """The protocol factory for ``loop.create_server``."""
        return SmtpSession(self)

    # --- connection limits --------------------------------------------------------------
    def admit(self, session: SmtpSession, peer: str) -> str | None:
        """Register a new connection, or the 421 that refuses it."""
        if len(self.sessions) >= self.limits.max_connections:
            return policy.TOO_MANY_CONNECTIONS.format(hostname=self.hostname)
        if self._per_client.get(peer, 0) >= self.limits.max_connections_per_client:
            return policy.TOO_MANY_FROM_CLIENT.format(hostname=self.hostname)
        self.sessions.add(session)
        self._per_client[peer] = self._per_client.get(peer, 0) + 1
        self.counters.sessions_opened += 1
        return None

    def release(self, session: SmtpSession, peer: str) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        left = self._per_client.get(peer, 1) - 1
        if left > 0:
            self._per_client[peer] = left
        else:
            self._per_client.pop(peer, None)

    # --- timeouts -------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start sweeping for timed-out sessions (one timer for all of them)."""
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_INTERVAL_S, self._sweep, loop)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def storing_started(self) -> None:
        self._storing += 1
        self._none_storing.clear()

    def storing_ended(self) -> None:
        self._storing -= 1
        if self._storing == 0:
            self._none_storing.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no mail is being stored (their replies are out); False on timeout."""
        try:
            await asyncio.wait_for(self._none_storing.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def close_all(self) -> None:
        """Tell every open session we are going away (421), and close it."""
        for session in list(self.sessions):
            session.abort_with(policy.SHUTTING_DOWN.format(hostname=self.hostname))

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = self.clock()
        for session in list(self.sessions):
            session.check_timeouts(now)
        self._sweeper = loop.call_later(SWEEP_INTERVAL_S, self._sweep, loop)


class SmtpSession(asyncio.Protocol):
    """One SMTP connection: a state machine over one buffer (see the module docstring)."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session = Session(peer="unknown")
        self.envelope: Envelope | None = None
        self._buf = bytearray()
        self._state = _COMMAND
        self._busy = False  # a mail is being stored, or TLS is starting
        self._closing = False
        self._paused = False
        self._skip_line = False  # the rest of an over-long command line is being skipped
        self._bad_commands = 0
        self._out: list[str] = []
        self._last_active = server.clock()
        self._data_started = 0.0
        self._data_scanned = 0
        self._data_discarded = 0

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.session.peer = str(peer[0]) if peer else "unknown"
        refusal = self.server.admit(self, self.session.peer)
        if refusal is not None:
            self.server.counters.refuse(refusal)
            self.transport.write(_line(refusal))
            self._closing = True
            self.transport.close()
            return
        self.transport.write(self.server.greeting)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.server.release(self, self.session.peer)
        self._buf = bytearray()
        self.envelope = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_active = self.server.clock()
        self.server.counters.bytes_received += len(data)
        self._buf += data
        if self._busy:
            if len(self._buf) > PAUSE_READING_AT and not self._paused and self.transport:
                self.transport.pause_reading()
                self._paused = True
            return
        self._process()

    def eof_received(self) -> bool | None:
        self._closing = True
        return None  # close our side too

    # --- the state machine ----------------------------------------------------------------
    def _process(self) -> None:
        buf_limit = self.server.limits.max_command_bytes
        while not (self._busy or self._closing):
            if self._state == _DATA:
                if not self._consume_data():
                    break
                continue
            buf = self._buf
            newline = buf.find(b"\n")
            if newline < 0:
                if len(buf) > buf_limit:
                    self._buf = bytearray()
                    if not self._skip_line:
                        self._skip_line = True
                        self._reply(policy.LINE_TOO_LONG)
                break
            line = bytes(buf[:newline])
            del buf[: newline + 1]
            if self._skip_line:
                self._skip_line = False
                continue
            if len(line) > buf_limit:
                self._reply(policy.LINE_TOO_LONG)
                continue
            self._command(line[:-1] if line.endswith(b"\r") else line)
        self._flush()

    def _reply(self, text: str) -> None:
        self._out.append(text)
        if text[0] in "45":
            self.server.counters.refuse(text)
            if text[:3] in policy.BAD_COMMAND_CODES:
                self._bad_commands += 1
                if self._bad_commands >= self.server.limits.max_bad_commands:
                    self.abort_with(policy.TOO_MANY_ERRORS.format(hostname=self.server.hostname))

    def _flush(self) -> None:
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(("\r\n".join(self._out) + "\r\n").encode("utf-8"))
        self._out.clear()

    def abort_with(self, reply: str) -> None:
        """Send ``reply`` (a 421) after what is pending, and close the connection."""
        if self._closing:
            return
        self._closing = True
        self._out.append(reply)
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def check_timeouts(self, now: float) -> None:
        if self._closing or self._busy:
            return
        hostname = self.server.hostname
        limits = self.server.limits
        if self._state == _DATA and now - self._data_started > limits.data_timeout_s:
            self.server.counters.timeouts += 1
            self.abort_with(policy.DATA_TIMEOUT.format(hostname=hostname))
        elif now - self._last_active > limits.idle_timeout_s:
            self.server.counters.timeouts += 1
            self.abort_with(policy.IDLE_TIMEOUT.format(hostname=hostname))

    # --- commands -------------------------------------------------------------------------
    def _command(self, line: bytes) -> None:
        try:
            text = policy.decode_command(line)
        except policy.CommandError as exc:
            self._reply(exc.reply)
            return
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        handler = _COMMANDS.get(verb)
        if handler is None:
            self._reply(policy.UNKNOWN_COMMAND)
            return
        handler(self, arg)

    def _ehlo(self, arg: str) -> None:
        self._greet(arg, "EHLO", esmtp=True)

    def _helo(self, arg: str) -> None:
        self._greet(arg, "HELO", esmtp=False)

    def _greet(self, arg: str, verb: str, *, esmtp: bool) -> None:
        if not arg or " " in arg or not arg.isascii():
            self._reply(policy.SYNTAX_HELO.format(verb=verb))
            return
        self.session.helo = arg
        self.session.esmtp = esmtp
        self.envelope = None
        server = self.server
        if not esmtp:
            self._out.append(f"250 {server.hostname}")
            return
        starttls = server.tls_context is not None and not self.session.tls
        lines = policy.ehlo_lines(
            server.hostname, max_bytes=server.limits.max_message_bytes, starttls=starttls
        )
        self._out.append(policy.multiline("250", lines))

    def _mail(self, arg: str) -> None:
        if not self.session.helo:
            self._reply(policy.NEED_HELO)
            return
        if self.envelope is not None:
            self._reply(policy.NESTED_MAIL)
            return
        parsed = policy.split_path(arg, "FROM")
        if parsed is None:
            self._reply(policy.SYNTAX_MAIL)
            return
        address, params = parsed
        if params and not self.session.esmtp:
            self._reply(policy.BAD_PARAMETER.format(name=params[0][:32]))
            return
        try:
            mail = policy.parse_mail_params(params, max_size=self.server.limits.max_message_bytes)
        except policy.CommandError as exc:
            self._reply(exc.reply)
            return
        refusal = policy.check_sender(address, smtputf8=mail.smtputf8)
        if refusal is not None:
            self._reply(refusal)
            return
        self.envelope = Envelope(
            mail_from=address, smtputf8=mail.smtputf8, declared_size=mail.size, body=mail.body
        )
        self._out.append(policy.OK_SENDER)

    def _rcpt(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is None:
            self._reply(policy.NEED_MAIL)
            return
        parsed = policy.split_path(arg, "TO")
        if parsed is None or not parsed[0]:
            self._reply(policy.SYNTAX_RCPT)
            return
        address, params = parsed
        if params:
            self._reply(policy.BAD_PARAMETER.format(name=params[0][:32]))
            return
        self._reply(self.server.handler.handle_RCPT(self.session, envelope, address))

    def _data(self, arg: str) -> None:
        envelope = self.envelope
        if arg:
            self._reply(policy.SYNTAX_NO_ARGS.format(verb="DATA"))
        elif envelope is None:
            self._reply(policy.NEED_MAIL)
        elif not envelope.rcpt_tos:
            self._reply(policy.NO_RECIPIENTS)
        else:
            self._out.append(policy.START_DATA)
            self._state = _DATA
            self._data_started = self.server.clock()
            self._data_scanned = 0
            self._data_discarded = 0

    def _rset(self, arg: str) -> None:
        self.envelope = None
        self._out.append(policy.OK)

    def _noop(self, arg: str) -> None:
        self._out.append(policy.OK)

    def _vrfy(self, arg: str) -> None:
        self._out.append(policy.CANNOT_VRFY)

    def _help(self, arg: str) -> None:
        self._out.append(policy.HELP)

    def _quit(self, arg: str) -> None:
        self._out.append(policy.BYE)
        self._closing = True
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def _not_implemented(self, arg: str) -> None:
        self._reply(policy.NOT_IMPLEMENTED)

    def _starttls(self, arg: str) -> None:
        context = self.server.tls_context
        if arg:
            self._reply(policy.SYNTAX_NO_ARGS.format(verb="STARTTLS"))
        elif self.session.tls:
            self._reply(policy.ALREADY_TLS)
        elif context is None:
            self._reply(policy.NOT_IMPLEMENTED)
        elif self.transport is not None:
            # Nothing read after STARTTLS is trusted: drop it, and read no more until TLS.
            self._buf = bytearray()
            self.transport.pause_reading()
            self._out.append(policy.START_TLS)
            self._busy = True
            asyncio.get_running_loop().create_task(self._start_tls(context))

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        self._flush()
        transport = self.transport
        assert transport is not None
        try:
            upgraded = await asyncio.get_running_loop().start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("TLS handshake with %s failed: %s", self.session.peer, exc)
            self._closing = True
            transport.close()
            return
        if upgraded is None:
            self._closing = True
            return
        self.transport = upgraded
        self.session = Session(peer=self.session.peer, tls=True)  # forget the plain EHLO
        self.envelope = None
        self._busy = False
        self._last_active = self.server.clock()
        self._process()

    # --- DATA -----------------------------------------------------------------------------
    def _consume_data(self) -> bool:
        """Look for the end of the mail in the buffer; True once it is found and handed on."""
        buf = self._buf
        limits = self.server.limits
        if self._data_scanned == 0 and not self._data_discarded and buf.startswith(b".\r\n"):
            end, body_end = 0, 0  # an empty mail
        else:
            end = buf.find(_TERMINATOR, max(0, self._data_scanned - 4))
            if end < 0:
                if len(buf) > limits.max_message_bytes + DATA_SLACK:
                    self._data_discarded += len(buf) - 4
                    self._buf = bytearray(buf[-4:])
                    if self._data_discarded > DISCARD_FACTOR * limits.max_message_bytes:
                        self.abort_with(policy.TOO_BIG)
                        return False
                    self._data_scanned = 4
                else:
                    self._data_scanned = len(buf)
                return False
            body_end = end + 2
            end += 2
        discarded = self._data_discarded
        body = bytes(memoryview(buf)[:body_end]) if not discarded else b""
        self._buf = buf[end + 3 :]
        self._state = _COMMAND  # after DATA, commands again
        envelope = self.envelope
        self.envelope = None
        assert envelope is not None
        if discarded:
            self._reply(policy.TOO_BIG)
            return True
        body = body[1:] if body.startswith(b".") else body
        envelope.content = body.replace(b"\r\n.", b"\r\n")
        refusal = policy.check_data_size(
            len(envelope.content),
            len(envelope.rcpt_tos),
            max_bytes=limits.max_message_bytes,
            budget_bytes=limits.recipient_budget_bytes,
        )
        if refusal is not None:
            self._reply(refusal)
            return True
        self._busy = True
        self._flush()
        asyncio.get_running_loop().create_task(self._store(envelope))
        return True

    async def _store(self, envelope: Envelope) -> None:
        server = self.server
        counters = server.counters
        started = time.perf_counter()
        server.storing_started()
        try:
            reply = await server.handler.handle_DATA(self.session, envelope)
        except Exception:  # the handler answers; this is a last resort, and our fault
            log.exception("handler failed on a mail from %s", self.session.peer)
            reply = policy.NOT_STORED
        finally:
            server.storing_ended()
        if reply.startswith("250"):
            counters.accepted(len(envelope.content), time.perf_counter() - started)
        elif reply.startswith("4"):
            counters.temporary_failures += 1
        self._busy = False
        if self._closing:
            return
        self._reply(reply)
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._last_active = self.server.clock()
        self._process()


_COMMANDS: dict[str, Callable[[SmtpSession, str], None]] = {
    "EHLO": SmtpSession._ehlo,
    "HELO": SmtpSession._helo,
    "MAIL": SmtpSession._mail,
    "RCPT": SmtpSession._rcpt,
    "DATA": SmtpSession._data,
    "RSET": SmtpSession._rset,
    "NOOP": SmtpSession._noop,
    "VRFY": SmtpSession._vrfy,
    "HELP": SmtpSession._help,
    "QUIT": SmtpSession._quit,
    "STARTTLS": SmtpSession._starttls,
    "EXPN": SmtpSession._not_implemented,
    "AUTH": SmtpSession._not_implemented,
    "BDAT": SmtpSession._not_implemented,
    "ETRN": SmtpSession._not_implemented,
    "TURN": SmtpSession._not_implemented,
}


def _line(text: str) -> bytes:
    return (text + "\r\n").encode("utf-8")
