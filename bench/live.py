"""End to end: from ingest's ``250`` to the mail's live event on ``GET /api/events``.

Run it from the checkout (a minute or two; the first run also provisions Kafka in the
bench state directory):

    .venv/bin/python -m bench.live
    .venv/bin/python -m bench.live --rate 400 --duration 30 --mails 20000

It starts the whole stack (default SQLite store) with ``python -m deploy.cli up
--detach`` in ``.tmpmail-bench/live`` on ports of its own (SMTP 23525, HTTP 28500, Kafka
29392/29393), the previous run's broker log, streams state and store removed first
(``--keep-data`` keeps them), and ``down`` at the end, on errors and on Ctrl-C too. It
creates one mailbox (``POST /api/mailboxes``) and listens to its live events (SSE, the
token as ``Authorization: Bearer``; a stream the api ends is reopened with
``Last-Event-ID`` and counted). Every mail is unique (its own Subject, Message-ID and so
body digest: streams would store a copy of the same bytes and Message-ID once), sent by
an asyncio SMTP client of its own on persistent connections (MAIL, RCPT and DATA
pipelined, then the body). Times are ``time.perf_counter()`` on this process's one event
loop (uvloop), which also runs the senders.

a. **Latency at a steady rate**: ``--rate`` mails/s for ``--duration`` s over
   ``--latency-connections`` connections, after ``--warm-up`` s of the same not counted.
   For each mail: when its ``250`` arrived and when its ``message`` event arrived
   (matched by Subject); p50/p90/p99/max of the difference, and the mails acked but
   never announced within ``--grace`` s. Targets: p50 <= 10 ms, p99 <= 50 ms.
b. **Sustained rate of one worker**: ``--mails`` mails as fast as ``--connections``
   connections go, to the same mailbox. From the first ``250``: acked per second (the
   250s), stored per second (the newest ``seq`` of ``GET /api/messages?limit=1``, polled
   every ``--poll`` s: SQLite's seq has no gaps) and delivered per second (the live
   events of those mails), each over the time from the first 250 to its last one.

The same store poll runs during a, so its table also splits each mail's time in two,
250 -> stored and stored -> live event, where "stored" is estimated as the middle between
the last poll that did not see the mail's seq and the first that did: to within half the
poll interval and a request, unbiased, too coarse for one mail but fine for percentiles.

It prints progress, a table, and writes JSON to
``.tmpmail-bench/results/live-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import secrets
import sys
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as bench/live.py: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.stack import (
    BENCH_DIR,
    HOST,
    RESULTS_DIR,
    BenchError,
    BenchStack,
    Mailbox,
    Ports,
    create_mailbox,
    git_state,
    machine,
    newest_seq,
    percentile,
    progress,
    sigterm_as_interrupt,
    stamp,
)
from schemas.runtime import loop_factory

SENDER = "bench@example.test"
HELO = "live.bench.test"
CRLF = b"\r\n"
REPLY_TIMEOUT_S = 30.0
TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0

now = time.perf_counter


# --- mails -------------------------------------------------------------------------------


@dataclass
class Mail:
    """One mail and what happened to it (perf_counter seconds)."""

    subject: str
    body: bytes
    scheduled: float = 0.0
    started: float | None = None
    acked: float | None = None
    refusal: str = ""


def make_mail(run: str, phase: str, n: int, recipient: str, size: int) -> Mail:
    """A unique RFC 5322 mail of about ``size`` bytes: CRLF lines, no line starts with '.'."""
    subject = f"bench-live {run} {phase} {n}"
    head = (
        f"From: Bench <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <live.{run}.{phase}.{n}@bench.test>\r\nDate: {formatdate()}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    first = f"{subject}: ".encode().ljust(74, b"x") + CRLF
    line = b"x" * 74 + CRLF
    lines = max(0, (size - len(head) - len(first)) // len(line))
    return Mail(subject=subject, body=head + first + line * lines)


# --- an SMTP client ----------------------------------------------------------------------


class SmtpError(RuntimeError):
    pass


class SmtpClient:
    """One persistent ESMTP connection; :meth:`send` pipelines MAIL, RCPT and DATA."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> SmtpClient:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        code, text = await client._reply()
        if code != 220:
            raise SmtpError(f"greeting: {text}")
        writer.write(f"EHLO {HELO}\r\n".encode())
        code, text = await client._reply()
        if code != 250:
            raise SmtpError(f"EHLO: {text}")
        if "PIPELINING" not in text.upper():
            raise SmtpError("the server does not offer PIPELINING")
        return client

    async def _reply(self) -> tuple[int, str]:
        lines = []
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            while True:
                line = await self._reader.readline()
                if not line:
                    raise SmtpError("the server closed the connection")
                lines.append(line)
                if len(line) < 4 or line[3:4] != b"-":
                    break
        text = b"".join(lines).decode(errors="replace").strip()
        try:
            return int(lines[-1][:3]), text
        except ValueError:
            raise SmtpError(f"not an SMTP reply: {text!r}") from None

    async def send(self, recipient: str, body: bytes) -> tuple[int, str, float]:
        """Send one mail; its final reply code and text, and when that reply arrived."""
        self._writer.write(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
        replies = [await self._reply() for _ in range(3)]
        if [code for code, _ in replies] != [250, 250, 354]:
            if replies[2][0] == 354:  # DATA went through after all: end it empty
                self._writer.write(b".\r\n")
                await self._reply()
            self._writer.write(b"RSET\r\n")
            await self._reply()
            bad = next(
                text
                for (code, text), want in zip(replies, (250, 250, 354), strict=True)
                if code != want
            )
            return int(bad[:3]), bad, now()
        self._writer.write(body)
        self._writer.write(b".\r\n")
        code, text = await self._reply()
        return code, text, now()

    async def close(self) -> None:
        try:
            self._writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self._reply(), 5)
        except (SmtpError, OSError, TimeoutError):
            pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


async def open_connections(port: int, count: int) -> list[SmtpClient]:
    return list(await asyncio.gather(*(SmtpClient.connect(HOST, port) for _ in range(count))))


async def close_connections(conns: list[SmtpClient]) -> None:
    await asyncio.gather(*(conn.close() for conn in conns))


async def sender(conn: SmtpClient, queue: asyncio.Queue[Mail | None], recipient: str) -> None:
    """Send the mails of ``queue`` on ``conn`` until it yields None."""
    while True:
        mail = await queue.get()
        if mail is None:
            return
        mail.started = now()
        try:
            code, text, at = await conn.send(recipient, mail.body)
        except (SmtpError, OSError, TimeoutError) as exc:
            mail.refusal = f"connection: {exc}"
            raise BenchError(f"an SMTP connection failed: {exc}") from exc
        if code == 250:
            mail.acked = at
        else:
            mail.refusal = text


# --- live events ---------------------------------------------------------------------------


@dataclass
class LiveEvents:
    """The mailbox's ``message`` events: when each arrived, by Subject, and in order
    (``times``: mails without a distinct Subject, such as smtp-source's, are counted there)."""

    client: httpx.AsyncClient
    mailbox: Mailbox
    arrived: dict[str, float] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    count: int = 0
    last_seq: int = 0
    reopened: int = 0
    errors: list[str] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Listen until cancelled; reopen a stream that ends (``Last-Event-ID``)."""
        while True:
            headers = {**self.mailbox.auth, "Accept": "text/event-stream"}
            if self.last_seq:
                headers["Last-Event-ID"] = str(self.last_seq)
            try:
                async with self.client.stream(
                    "GET",
                    "/api/events",
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=None),
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise BenchError(
                            f"GET /api/events: {response.status_code} {response.text[:300]}"
                        )
                    self.connected.set()
                    await self._read(response)
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if len(self.errors) > 20:
                    raise BenchError(f"GET /api/events keeps failing: {exc}") from exc
                await asyncio.sleep(0.5)
            self.reopened += 1
            progress(f"  the live stream ended (seq {self.last_seq}); reopening it")

    async def _read(self, response: httpx.Response) -> None:
        event, first_at = "message", 0.0
        data: list[str] = []
        async for line in response.aiter_lines():
            if not line:
                if data:
                    self._dispatch(event, "\n".join(data), first_at)
                event, data, first_at = "message", [], 0.0
                continue
            if not first_at:
                first_at = now()
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id" and value.isdigit():
                self.last_seq = max(self.last_seq, int(value))

    def _dispatch(self, event: str, data: str, at: float) -> None:
        if event != "message":
            return
        record: dict[str, Any] = json.loads(data)
        subject = str(record.get("subject", ""))
        self.count += 1
        self.times.append(at)
        if subject not in self.arrived:
            self.arrived[subject] = at
            self.seqs[subject] = int(record.get("seq", 0))


class StorePoller:
    """The mailbox's newest ``seq`` (``GET /api/messages?limit=1``) every ``interval_s``:
    when each seq was first seen stored. A sample's time is the middle of the request
    that saw it, so a commit time is known to within the interval and one request."""

    def __init__(self, client: httpx.AsyncClient, mailbox: Mailbox, interval_s: float) -> None:
        self._client = client
        self._mailbox = mailbox
        self._interval_s = interval_s
        self.samples: list[tuple[float, int]] = []  # (when answered, newest seq)
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def newest(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def seen_at(self, seq: int) -> float | None:
        """When a poll first saw ``seq`` (or a later one) stored."""
        index = bisect.bisect_left(self.samples, seq, key=lambda sample: sample[1])
        return self.samples[index][0] if index < len(self.samples) else None

    def stored_at(self, seq: int) -> float | None:
        """An estimate of when ``seq`` was stored: the middle between the last poll that
        did not see it and the first that did (so unbiased, to within the interval)."""
        index = bisect.bisect_left(self.samples, seq, key=lambda sample: sample[1])
        if index >= len(self.samples):
            return None
        if index == 0:
            return self.samples[0][0]
        return (self.samples[index - 1][0] + self.samples[index][0]) / 2

    async def _run(self) -> None:
        while True:
            try:
                asked = now()
                seq = await newest_seq(self._client, self._mailbox)
                if self.samples and seq < self.samples[-1][1]:
                    seq = self.samples[-1][1]  # keep it monotonic for seen_at
                self.samples.append(((asked + now()) / 2, seq))
            except httpx.HTTPError as exc:
                self.errors.append(str(exc))
            await asyncio.sleep(self._interval_s)


# --- a. latency at a steady rate -------------------------------------------------------------


async def steady(
    args: argparse.Namespace,
    mailbox: Mailbox,
    events: LiveEvents,
    poller: StorePoller,
    run: str,
    phase: str,
    seconds: float,
) -> list[Mail]:
    """``args.rate`` mails/s for ``seconds`` over ``args.latency_connections`` connections;
    then wait until every acked mail was announced, or ``args.grace`` s."""
    total = max(1, round(args.rate * seconds))
    mails = [make_mail(run, phase, n, mailbox.address, args.size) for n in range(total)]
    conns = await open_connections(args.smtp_port, args.latency_connections)
    poller.start()
    queue: asyncio.Queue[Mail | None] = asyncio.Queue()
    workers = [asyncio.create_task(sender(conn, queue, mailbox.address)) for conn in conns]
    ticker = asyncio.create_task(
        tick(lambda: f"{phase}: {_counts(mails, events)}", args.progress_every)
    )
    try:
        start = now() + 0.01
        for n, mail in enumerate(mails):
            mail.scheduled = start + n / args.rate
            delay = mail.scheduled - now()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(mail)
        for _ in conns:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        await wait_delivered(mails, events, args.grace)
        await asyncio.sleep(args.poll * 2)  # a poll past the last event
    finally:
        poller.stop()
        ticker.cancel()
        for task in workers:
            task.cancel()
        await close_connections(conns)
    progress(f"{phase}: {_counts(mails, events)}")
    return mails


def _counts(mails: list[Mail], events: LiveEvents) -> str:
    acked = [m for m in mails if m.acked is not None]
    delivered = sum(1 for m in acked if m.subject in events.arrived)
    refused = sum(1 for m in mails if m.refusal)
    return (
        f"{sum(1 for m in mails if m.started is not None)}/{len(mails)} sent, "
        f"{len(acked)} acked, {delivered} delivered, {refused} refused"
    )


async def wait_delivered(mails: list[Mail], events: LiveEvents, grace_s: float) -> None:
    """Until every acked mail has its event, or ``grace_s`` without a new one."""
    acked = [m.subject for m in mails if m.acked is not None]
    seen, quiet_since = -1, now()
    while True:
        have = sum(1 for subject in acked if subject in events.arrived)
        if have == len(acked):
            return
        if have != seen:
            seen, quiet_since = have, now()
        elif now() - quiet_since > grace_s:
            return
        await asyncio.sleep(0.02)


def latency_report(
    mails: list[Mail], events: LiveEvents, poller: StorePoller, args: argparse.Namespace
) -> dict:
    acked = [m for m in mails if m.acked is not None]
    deltas = []
    series = []  # (s after the first 250, SSE event - 250 ms): latency over time
    first_ack = min((m.acked for m in acked if m.acked is not None), default=0.0)
    missing = []
    to_store, store_to_event = [], []  # the same split at the store poll's resolution
    for mail in acked:
        assert mail.acked is not None
        at = events.arrived.get(mail.subject)
        if at is None:
            missing.append(mail.subject)
            continue
        deltas.append((at - mail.acked) * 1000)
        series.append([round(mail.acked - first_ack, 4), round((at - mail.acked) * 1000, 3)])
        stored_at = poller.stored_at(events.seqs[mail.subject])
        if stored_at is not None:
            to_store.append((stored_at - mail.acked) * 1000)
            store_to_event.append((at - stored_at) * 1000)
    acks = [(m.acked - m.started) * 1000 for m in acked if m.started is not None and m.acked]
    late = [(m.started - m.scheduled) * 1000 for m in mails if m.started is not None]
    sent_over = _span([m.started for m in mails if m.started is not None])
    return {
        "rate": args.rate,
        "duration_s": args.duration,
        "connections": args.latency_connections,
        "mails": len(mails),
        "acked": len(acked),
        "refused": sum(1 for m in mails if m.refusal),
        "first_refusal": next((m.refusal for m in mails if m.refusal), ""),
        "delivered": len(deltas),
        "missing": len(missing),
        "missing_subjects": missing[:20],
        "achieved_rate": round(len(mails) / sent_over, 1) if sent_over else None,
        "sse_minus_250_ms": _summary(deltas),
        "store_poll_minus_250_ms": _summary(to_store),
        "sse_minus_store_poll_ms": _summary(store_to_event),
        "store_poll_interval_s": args.poll,
        "ack_ms": _summary(acks),
        "send_lateness_ms": _summary(late),
        "targets_ms": {"p50": TARGET_P50_MS, "p99": TARGET_P99_MS},
        "latencies_ms": [round(d, 3) for d in deltas],
        "series": series,
    }


def _summary(values: list[float]) -> dict[str, float | int | None]:
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "count": len(values),
        "min": r(min(values) if values else None),
        "p50": r(percentile(values, 50)),
        "p90": r(percentile(values, 90)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values) if values else None),
    }


def _span(times: list[float]) -> float:
    return max(times) - min(times) if len(times) > 1 else 0.0


# --- b. sustained rate ---------------------------------------------------------------------


async def sustained(
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    mailbox: Mailbox,
    events: LiveEvents,
    run: str,
) -> dict:
    phase = "sustained"
    mails = [make_mail(run, phase, n, mailbox.address, args.size) for n in range(args.mails)]
    base_seq = await newest_seq(client, mailbox)
    conns = await open_connections(args.smtp_port, args.connections)
    queue: asyncio.Queue[Mail | None] = asyncio.Queue()
    for mail in mails:
        queue.put_nowait(mail)
    for _ in conns:
        queue.put_nowait(None)
    poller = StorePoller(client, mailbox, args.poll)

    def line() -> str:
        return f"{phase}: {_counts(mails, events)}, {poller.newest - base_seq} stored"

    poller.start()
    ticker = asyncio.create_task(tick(line, args.progress_every))
    progress(f"{phase}: {len(mails)} mails over {len(conns)} connections, as fast as they go")
    try:
        workers = [asyncio.create_task(sender(conn, queue, mailbox.address)) for conn in conns]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
        acked_n = sum(1 for m in mails if m.acked is not None)
        quiet_since, last = now(), (-1, -1)
        while True:  # until everything acked is stored and announced, or a quiet grace
            have = (poller.newest - base_seq, _delivered(mails, events))
            if have[0] >= acked_n and have[1] >= acked_n:
                break
            if have != last:
                last, quiet_since = have, now()
            elif now() - quiet_since > args.grace:
                progress(f"{phase}: nothing new for {args.grace:g}s, stopping the wait")
                break
            await asyncio.sleep(args.poll)
        await asyncio.sleep(args.poll * 2)  # one more poll past the end
    finally:
        ticker.cancel()
        poller.stop()
        await close_connections(conns)
    progress(line())
    acked_at = sorted(m.acked for m in mails if m.acked is not None)
    if not acked_at:
        raise BenchError(f"{phase}: no mail was accepted: {mails[0].refusal}")
    first = acked_at[0]
    acked_n = len(acked_at)
    delivered_at = sorted(
        events.arrived[m.subject] for m in mails if m.acked and m.subject in events.arrived
    )
    stored_n = poller.newest - base_seq
    stored_last = poller.seen_at(base_seq + min(stored_n, acked_n)) if stored_n > 0 else None

    def rate(count: int, last: float | None) -> dict[str, float | int | None]:
        window = None if last is None else last - first
        return {
            "count": count,
            "last_after_first_250_s": None if window is None else round(window, 3),
            "per_s": round(count / window, 1) if window else None,
        }

    return {
        "mails": len(mails),
        "connections": len(conns),
        "refused": sum(1 for m in mails if m.refusal),
        "first_refusal": next((m.refusal for m in mails if m.refusal), ""),
        "acked": rate(acked_n, acked_at[-1]),
        "stored": rate(min(stored_n, acked_n), stored_last),
        "stored_seq_advance": stored_n,
        "delivered": rate(len(delivered_at), delivered_at[-1] if delivered_at else None),
        "poll_interval_s": args.poll,
        "poll_errors": len(poller.errors),
    }


def _delivered(mails: list[Mail], events: LiveEvents) -> int:
    return sum(1 for m in mails if m.acked is not None and m.subject in events.arrived)


async def tick(line: Callable[[], str], every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        progress(line())


# --- the run ---------------------------------------------------------------------------------


async def listen(
    client: httpx.AsyncClient, mailbox: Mailbox, timeout_s: float = 30.0
) -> tuple[LiveEvents, asyncio.Task[None]]:
    """The mailbox's live events, connected, and the task that reads them (cancel it)."""
    events = LiveEvents(client, mailbox)
    listener = asyncio.create_task(events.run())
    connected = asyncio.create_task(events.connected.wait())
    await asyncio.wait({listener, connected}, timeout=timeout_s, return_when=FIRST_COMPLETED)
    if listener.done():
        connected.cancel()
        listener.result()  # raises what ended it
    if not connected.done():
        connected.cancel()
        listener.cancel()
        raise BenchError(f"GET /api/events did not answer within {timeout_s:g} s")
    return events, listener


async def bench(args: argparse.Namespace, stack: BenchStack) -> dict:
    run = secrets.token_hex(3)
    async with stack.client() as client:
        mailbox = await create_mailbox(client)
        progress(f"mailbox {mailbox.address}")
        events, listener = await listen(client, mailbox)
        progress("live events: connected")
        try:
            if args.warm_up > 0:
                progress(f"warm-up: {args.rate:g} mails/s for {args.warm_up:g}s, not counted")
                warm = StorePoller(client, mailbox, args.poll)
                await steady(args, mailbox, events, warm, run, "warm-up", args.warm_up)
            progress(
                f"latency: {args.rate:g} mails/s for {args.duration:g}s on "
                f"{args.latency_connections} connections"
            )
            poller = StorePoller(client, mailbox, args.poll)
            mails = await steady(args, mailbox, events, poller, run, "latency", args.duration)
            latency = latency_report(mails, events, poller, args)
            await asyncio.sleep(args.pause)
            rates = await sustained(args, client, mailbox, events, run)
        finally:
            if listener.done() and not listener.cancelled() and listener.exception():
                progress(f"live events failed: {listener.exception()}")
            listener.cancel()
        return {
            "mailbox": mailbox.address,
            "latency": latency,
            "sustained": rates,
            "live_stream": {
                "events": events.count,
                "reopened": events.reopened,
                "errors": events.errors[:10],
            },
        }


def table(report: dict, args: argparse.Namespace) -> str:
    lat = report["latency"]
    d = lat["sse_minus_250_ms"]
    a = lat["ack_ms"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def verdict(value: float | None, target: float) -> str:
        return "" if value is None else ("ok" if value <= target else "MISSED")

    lines = [
        f"tmpmail live delivery, {args.size}-byte mails to one mailbox, SQLite store, "
        f"SSE queue {args.sse_queue_size}",
        "",
        f"a. latency at {lat['rate']:g} mails/s for {lat['duration_s']:g}s on "
        f"{lat['connections']} connections (achieved {lat['achieved_rate']} mails/s)",
        f"   mails {lat['mails']}, acked {lat['acked']}, refused {lat['refused']}, "
        f"delivered {lat['delivered']}, missing {lat['missing']}",
        "",
        "   ms                    p50     p90     p99     max   target",
        f"   SSE event - 250    {ms(d['p50']):>6}  {ms(d['p90']):>6}  {ms(d['p99']):>6}  "
        f"{ms(d['max']):>6}   p50 <= {TARGET_P50_MS:g} {verdict(d['p50'], TARGET_P50_MS)}, "
        f"p99 <= {TARGET_P99_MS:g} {verdict(d['p99'], TARGET_P99_MS)}",
        f"   250 (end of DATA)  {ms(a['p50']):>6}  {ms(a['p90']):>6}  {ms(a['p99']):>6}  "
        f"{ms(a['max']):>6}",
    ]
    poll_ms = lat["store_poll_interval_s"] * 1000
    for title, key in (
        ("stored - 250", "store_poll_minus_250_ms"),
        ("SSE - stored", "sse_minus_store_poll_ms"),
    ):
        x = lat[key]
        lines.append(
            f"   {title:<17}  {ms(x['p50']):>6}  {ms(x['p90']):>6}  {ms(x['p99']):>6}  "
            f"{ms(x['max']):>6}   (estimated: store polled every {poll_ms:g} ms)"
        )
    lines.append("")
    s = report["sustained"]
    lines += [
        f"b. {s['mails']} mails over {s['connections']} connections as fast as they go "
        f"(refused {s['refused']}); from the first 250:",
        "",
        "                 mails   last at (s)    per s",
    ]
    for name in ("acked", "stored", "delivered"):
        row = s[name]
        last = row["last_after_first_250_s"]
        per_s = row["per_s"]
        lines.append(
            f"   {name:<10} {row['count']:>8}   {'-' if last is None else f'{last:.2f}':>11}"
            f"   {'-' if per_s is None else f'{per_s:.0f}':>6}"
        )
    live = report["live_stream"]
    lines += ["", f"live stream: {live['events']} events, reopened {live['reopened']} times"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smtp-port", type=int, default=23525)
    parser.add_argument("--http-port", type=int, default=28500)
    parser.add_argument("--kafka-port", type=int, default=29392)
    parser.add_argument("--controller-port", type=int, default=29393)
    parser.add_argument("--state-dir", type=Path, default=BENCH_DIR / "live")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the previous run's broker log and store"
    )
    parser.add_argument("--size", type=int, default=5120, help="mail size in bytes")
    parser.add_argument("--rate", type=float, default=200.0, help="a: mails per second")
    parser.add_argument("--duration", type=float, default=15.0, help="a: seconds at the rate")
    parser.add_argument("--warm-up", type=float, default=3.0, help="a: seconds not counted")
    parser.add_argument("--latency-connections", type=int, default=4, help="a: connections")
    parser.add_argument("--mails", type=int, default=5000, help="b: mails")
    parser.add_argument("--connections", type=int, default=20, help="b: connections")
    parser.add_argument("--poll", type=float, default=0.02, help="store poll interval, s")
    parser.add_argument(
        "--grace", type=float, default=15.0, help="wait this long without a new event or store"
    )
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between a and b")
    parser.add_argument(
        "--sse-queue-size",
        type=int,
        default=10_000,
        help="TMPMAIL_SSE_QUEUE_SIZE of the api (default 10000, its maximum; tmpmail's own "
        "default, 64, drops a client that falls that far behind)",
    )
    parser.add_argument("--progress-every", type=float, default=2.0, help="seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = stamp()
    ports = Ports(args.smtp_port, args.http_port, args.kafka_port, args.controller_port)
    stack = BenchStack(
        args.state_dir, ports, extra_env={"TMPMAIL_SSE_QUEUE_SIZE": str(args.sse_queue_size)}
    )
    info = machine()
    progress(f"{info['cpus']} CPUs, load average {info['load_before'][0]:.2f} before the run")
    with sigterm_as_interrupt():
        try:
            if not args.keep_data:
                stack.wipe_data()
            stack.up()
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                report = runner.run(bench(args, stack))
        except BenchError as exc:
            print(f"bench.live: {exc}", file=sys.stderr)
            if stack.started:
                print(stack.log_tails(), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench.live: interrupted", file=sys.stderr)
            return 130
        finally:
            stack.down()
    record = {
        "bench": "live",
        "started_at": started_at,
        "git": git_state(),
        "machine": info,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **report,
    }
    print()
    print(table(report, args))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"live-{started_at}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
