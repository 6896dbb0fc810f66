"""The 250 latency of an SMTP server: the time from the end of DATA to its reply.

smtp-source does not report it, so :func:`measure_250_latency` sends mails itself, one
after another on one connection (EHLO once, then MAIL, RCPT, DATA and the body per
mail), and times each from writing the final ``.`` line, the body already written and
drained, to reading the whole 250 reply. With ``interval_s`` it paces the mails
(a low rate beside a load) and stops early when ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from dataclasses import dataclass, field

CRLF = b"\r\n"
REPLY_TIMEOUT_S = 30.0


class SmtpReplyError(RuntimeError):
    """The server answered something other than what the step expects."""


@dataclass
class LatencySample:
    """The 250 latencies of one run, in milliseconds, and the mails that failed."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def extend(self, other: LatencySample) -> None:
        self.latencies_ms.extend(other.latencies_ms)
        self.failures.extend(other.failures)

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0..100, nearest rank), or None with no samples."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def summary(self) -> dict[str, float | int | None]:
        values = self.latencies_ms

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "count": len(values),
            "failures": len(self.failures),
            "p50_ms": ms(self.percentile(50)),
            "p99_ms": ms(self.percentile(99)),
            "mean_ms": ms(statistics.fmean(values) if values else None),
            "max_ms": ms(max(values) if values else None),
        }


def make_message(size: int, sender: str, recipient: str, n: int = 0) -> bytes:
    """An RFC 5322 mail of about ``size`` bytes: CRLF lines of 76 characters, dot-safe."""
    head = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: latency probe {n}\r\n"
        f"Message-ID: <probe-{n}-{time.time_ns()}@bench.test>\r\n\r\n"
    ).encode()
    line = b"x" * 74 + CRLF
    lines = max(1, (size - len(head)) // len(line))
    return head + line * lines


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One (possibly multi-line) reply: its code and its text."""
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT_S)
        if not line:
            raise SmtpReplyError("the server closed the connection")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            break
    try:
        return int(lines[-1][:3]), b"".join(lines)
    except ValueError:
        raise SmtpReplyError(f"not an SMTP reply: {lines[-1]!r}") from None


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str, expect: int
) -> None:
    writer.write(line.encode() + CRLF)
    await writer.drain()
    code, text = await _read_reply(reader)
    if code != expect:
        raise SmtpReplyError(f"{line.split()[0]}: {text.decode(errors='replace').strip()}")


async def measure_250_latency(
    host: str,
    port: int,
    count: int,
    *,
    size: int = 5120,
    sender: str = "probe@example.test",
    recipient: str = "someone@tmpmail.test",
    interval_s: float = 0.0,
    stop: asyncio.Event | None = None,
) -> LatencySample:
    """Send up to ``count`` mails on one connection; time each one's 250.

    A mail that is refused is recorded in ``failures`` and the next one goes on after a
    ``RSET``; a broken connection ends the run with what it has.
    """
    sample = LatencySample()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        code, text = await _read_reply(reader)
        if code != 220:
            raise SmtpReplyError(f"greeting: {text.decode(errors='replace').strip()}")
        await _command(reader, writer, "EHLO probe.bench.test", 250)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for n in range(count):
            if stop is not None and stop.is_set():
                break
            body = make_message(size, sender, recipient, n)
            try:
                await _command(reader, writer, f"MAIL FROM:<{sender}>", 250)
                await _command(reader, writer, f"RCPT TO:<{recipient}>", 250)
                await _command(reader, writer, "DATA", 354)
                writer.write(body)
                await writer.drain()
                began = time.perf_counter()
                writer.write(b"." + CRLF)
                code, text = await _read_reply(reader)
                elapsed_ms = (time.perf_counter() - began) * 1000
            except SmtpReplyError as exc:
                sample.failures.append(str(exc))
                await _command(reader, writer, "RSET", 250)
                continue
            if code == 250:
                sample.latencies_ms.append(elapsed_ms)
            else:
                sample.failures.append(f"end of data: {text.decode(errors='replace').strip()}")
            if interval_s > 0:
                next_at += interval_s
                await _sleep_until(loop, next_at, stop)
        await _command(reader, writer, "QUIT", 221)
    except (SmtpReplyError, OSError, TimeoutError) as exc:
        sample.failures.append(f"connection: {exc}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    return sample


async def _sleep_until(
    loop: asyncio.AbstractEventLoop, when: float, stop: asyncio.Event | None
) -> None:
    delay = when - loop.time()
    if delay <= 0:
        return
    if stop is None:
        await asyncio.sleep(delay)
        return
    try:
        await asyncio.wait_for(stop.wait(), delay)
    except TimeoutError:
        pass
