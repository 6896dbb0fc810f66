"""Live fan-out: thousands of SSE clients on one API process, memory and latency.

Run it from the checkout (several minutes; the first run also provisions Kafka in the
bench state directory):

    .venv/bin/python -m bench.fanout
    .venv/bin/python -m bench.fanout --clients 10000 --rounds 5 --rates 0 --keep-data
    .venv/bin/python -m bench.fanout --clients 10000 --keep-data --profile   # py-spy

It starts the whole stack (SQLite store) with ``python -m deploy.cli up --detach`` in
``.tmpmail-bench/fanout`` on ports of its own (SMTP 25525, HTTP 28700, Kafka
29592/29593), with ``TMPMAIL_SSE_MAX_CONNECTIONS`` raised past the largest count, and
creates one mailbox per client (``POST /api/mailboxes``; a mailbox takes at most
``TMPMAIL_SSE_MAX_PER_MAILBOX`` streams, so every client has its own). The mailboxes are
kept in ``<state>/mailboxes.json`` and reused with ``--keep-data``. The soft limit on
open files is raised to the hard one here, before the stack starts, so the API process
inherits it; each client process raises its own. Then, for each ``--clients`` count:

1. The stack is restarted (``down``, ``up``, data kept), so the API process starts
   fresh and memory freed by the previous count cannot hide this one's
   (``--no-restart`` skips it).
2. A few clients (``--warm-up-clients``) connect, get one event and leave: the first
   request of every kind is not measured.
3. The API's RSS (``VmRSS`` of ``/proc/<pid>/status``) is read, the clients connect,
   ``--settle`` s pass, and it is read again: memory per connection is the difference
   over the clients connected.
4. For each of ``--rates`` (events/s; 0 is a burst, as fast as the producer takes them;
   default 2,000/s, above what one streams worker delivers (it stored 1,712/s end to
   end), then 5,000/s, about a replay's rate, then a burst: the target is judged at rates
   up to :data:`JUDGED_RATE_MAX`; the faster two are stress figures, which show the CPU
   per event and where the machine runs out), ``--rounds``
   times: one ``DeliveryEvent`` (``seq`` = the round) for every connected mailbox is
   published to ``tmpmail.delivery.v1`` with the project's producer
   (``bus.AsyncProducer``: acks=all, linger 0). Each publication time is taken right
   before its ``produce``, each receipt when the bytes holding its ``id:`` line arrive
   at the client; the latency is the difference. ``time.monotonic()`` is
   CLOCK_MONOTONIC, one clock for every process of the machine, so the two ends need no
   synchronising. Beside the API, a consumer of the bench's own (:class:`KafkaProbe`,
   the API's kind of consumer, stamping in its thread) says when each event could first
   have reached any consumer: that splits each latency into the broker's part and the
   API's (``--no-probe`` leaves it out).

Why the delivery topic and not real mail: what this measures is the API's fan-out (its
broadcast consumer, the hub, the SSE writes). 10,000 mails through SMTP would first
queue in ingest, the broker and the streams worker, which store about 1,500 mails/s on
this machine (``bench.live``): the latency would be that pipeline's backlog, several
seconds, and say nothing about 10,000 open streams. ``bench.live`` measures the whole
path from the 250 at a sender. The events are those streams publishes (same record,
same binding, same key); they name a seq the store does not hold, which only a client
resuming with ``Last-Event-ID`` would notice, and none does here.

The clients run in ``--client-processes`` processes of this module (``--worker``, driven
over stdin/stdout with JSON lines), each one uvloop event loop of bare
``asyncio.Protocol`` connections: one ``GET /api/events`` with the token as
``Authorization: Bearer``, the status line checked, then nothing but a search for
``\\nid: `` in what arrives and an append of (client, seq, time). At most
``--connect-concurrency`` connections per process are being opened at once. Their CPU is
reported beside the API's (utime + stime of ``/proc/<pid>/stat``), so one can see that
the clients are not the bottleneck.

It prints progress, a table, and writes JSON to
``.tmpmail-bench/results/fanout-<timestamp>.json`` (with ``--profile``, py-spy's raw
stacks of the API process during the rounds beside it). Everything shares the machine's
cores: Kafka, the API, the publisher and the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as bench/fanout.py: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import CLK_TCK, _stat_fields
from bench.live import _summary, tick
from bench.stack import (
    BENCH_DIR,
    HOST,
    REPO,
    RESULTS_DIR,
    BenchError,
    BenchStack,
    Mailbox,
    Ports,
    create_mailbox,
    git_state,
    machine,
    progress,
    sigterm_as_interrupt,
    stamp,
)
from bus import AsyncProducer, BroadcastConsumer, client_config, producer_config
from deploy.procs import PidFile
from schemas.keys import key_bytes
from schemas.records import DeliveryEvent, utcnow
from schemas.runtime import loop_factory
from schemas.settings import Settings
from schemas.topics import DELIVERY_TOPIC, delivery_topic
from store import create_store

clock = time.monotonic

TARGET_CLIENTS = 10_000
TARGET_P99_MS = 500.0
#: The fastest publication rate the target is judged at (events/s): above what one streams
#: worker delivers; faster modes (and the burst) are stress figures.
JUDGED_RATE_MAX = 2000.0
#: Open files beside the connections: the interpreter, logs, sockets to Kafka, the store.
FD_HEADROOM = 256
#: What an SSE event's id line starts with (every line ends CRLF; JSON data has no LF).
ID_LINE = b"\nid: "
#: A response head longer than this is not ours.
MAX_HEAD_BYTES = 16 * 1024
WORKER_STATUS_S = 0.1
CONNECT_TIMEOUT_S = 60.0
PREVIEW = ("A typical first line of a message, as the parser previews it. " * 4)[:200]


# --- the latency maths -----------------------------------------------------------------------


@dataclass
class RoundLatency:
    """One round's receipts matched with its publications."""

    latencies_ms: list[float]
    #: client index -> when its event arrived
    received_at: dict[int, float]
    missing: int
    duplicates: int
    stray: int
    first_sent: float | None
    last_received: float | None

    @property
    def window_s(self) -> float | None:
        """From the first publication to the last receipt."""
        if self.first_sent is None or self.last_received is None:
            return None
        return self.last_received - self.first_sent


def match_receipts(
    sent_at: dict[int, float], seq: int, receipts: Iterable[tuple[int, int, float]]
) -> RoundLatency:
    """``sent_at``: client index -> when its event (``seq``) was published; ``receipts``:
    (client index, seq, when it arrived). A receipt of another seq, or of a client that
    was sent nothing, is stray; a second receipt of one client's event is a duplicate."""
    got: dict[int, float] = {}
    duplicates = stray = 0
    for index, event_seq, at in receipts:
        if event_seq != seq or index not in sent_at:
            stray += 1
        elif index in got:
            duplicates += 1
        else:
            got[index] = at
    return RoundLatency(
        latencies_ms=[(at - sent_at[index]) * 1000 for index, at in got.items()],
        received_at=got,
        missing=len(sent_at) - len(got),
        duplicates=duplicates,
        stray=stray,
        first_sent=min(sent_at.values()) if sent_at else None,
        last_received=max(got.values()) if got else None,
    )


def per_connection_kib(rss_before_kib: int, rss_after_kib: int, connections: int) -> float | None:
    if connections <= 0:
        return None
    return round((rss_after_kib - rss_before_kib) / connections, 2)


# --- /proc ---------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """The resident set of ``pid`` in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> tuple[float, float]:
    """utime + stime and stime alone of ``pid`` (all its threads), in seconds; 0 if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0, 0.0
    user, system = int(fields[11]), int(fields[12])
    return (user + system) / CLK_TCK, system / CLK_TCK


def open_fds(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return -1


def raise_fd_limit(needed: int) -> int:
    """Raise the soft limit on open files to the hard one; fail if that is below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(
            f"{needed} open files are needed and the hard limit is {hard} (ulimit -Hn): "
            "raise it, or bench fewer clients"
        )
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(hard)


# --- the clients (worker processes) -----------------------------------------------------------


class SseClient(asyncio.Protocol):
    """One live stream: send the request, check the status, then only find ``id:`` lines."""

    def __init__(self, index: int, request: bytes, worker: Worker) -> None:
        self.index = index
        self.request = request
        self.worker = worker
        self.transport: asyncio.Transport | None = None
        self.answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.in_head = True
        self.pending = b""
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        at = clock()
        if self.pending:
            data = self.pending + data
            self.pending = b""
        if self.in_head:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD_BYTES:
                    self._fail("response head too long")
                else:
                    self.pending = data
                return
            status = data[: data.find(b"\r\n")]
            if not status.startswith(b"HTTP/1.1 200 "):
                self._fail(status.decode(errors="replace"))
                return
            self.in_head = False
            self.answered.set_result("")
            data = data[end + 2 :]  # keep the CRLF before the body: its first line is found too
        last = data.rfind(b"\n")  # what follows it may be a line cut short: kept, with it
        if last < 0:
            self.pending = data
            return
        self.pending = data[last:]
        pos = data.find(ID_LINE, 0, last)
        while pos >= 0:
            start = pos + len(ID_LINE)
            end = data.find(b"\n", start)
            self.worker.receipts.append((self.index, int(data[start:end]), at))
            pos = data.find(ID_LINE, end, last)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_result(f"closed before the status line: {exc or 'EOF'}")
        elif not self.closing and not self.in_head:
            self.worker.closed_by_server += 1

    def _fail(self, why: str) -> None:
        if not self.answered.done():
            self.answered.set_result(why)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class Worker:
    """What one client process holds."""

    clients: list[SseClient] = field(default_factory=list)
    receipts: list[tuple[int, int, float]] = field(default_factory=list)
    reported: int = 0
    connected: int = 0
    failed: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    closed_by_server: int = 0

    def status(self) -> dict[str, Any]:
        return {
            "type": "status",
            "connected": self.connected,
            "failed": len(self.failed),
            "received": self.reported + len(self.receipts),
            "closed_by_server": self.closed_by_server,
        }


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def connect_clients(
    worker: Worker, host: str, port: int, clients: Sequence[tuple[int, str]], concurrency: int
) -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def connect(index: int, token: str) -> None:
        request = (
            f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        async with gate:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    _, client = await loop.create_connection(
                        lambda: SseClient(index, request, worker), host, port
                    )
                    why = await client.answered
            except (OSError, TimeoutError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                worker.clients.append(client)
        if why:
            worker.failed.append(index)
            worker.errors[why[:200]] += 1
        else:
            worker.connected += 1

    await asyncio.gather(*(connect(index, token) for index, token in clients))


async def worker_main() -> None:
    """A client process: a job on the first stdin line, then commands; JSON lines out."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    job = json.loads(await reader.readline())
    clients = [(int(index), str(token)) for index, token in job["clients"]]
    raise_fd_limit(len(clients) + FD_HEADROOM)
    worker = Worker()

    async def report_status() -> None:
        while True:
            emit(worker.status())
            await asyncio.sleep(WORKER_STATUS_S)

    reporter = asyncio.create_task(report_status())
    await connect_clients(worker, job["host"], int(job["port"]), clients, job["concurrency"])
    emit(
        {
            **worker.status(),
            "type": "connected",
            "failed_indices": worker.failed,
            "errors": dict(worker.errors.most_common(10)),
        }
    )
    while line := await reader.readline():
        command = json.loads(line)["cmd"]
        if command == "report":
            receipts, worker.receipts = worker.receipts, []
            worker.reported += len(receipts)
            emit({"type": "report", "receipts": receipts})
        elif command == "close":
            for client in worker.clients:
                client.close()
            await asyncio.sleep(0.2)  # let the transports close
            break
    reporter.cancel()
    emit({**worker.status(), "type": "closed"})


class ClientProcess:
    """One worker process, seen from the bench: its counters and its replies."""

    def __init__(self, proc: asyncio.subprocess.Process, size: int) -> None:
        self.proc = proc
        self.size = size
        self.connected = 0
        self.failed = 0
        self.received = 0
        self.closed_by_server = 0
        self.failed_indices: list[int] = []
        self.errors: dict[str, int] = {}
        self.done_connecting = asyncio.Event()
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, host: str, port: int, clients: Sequence[tuple[int, str]], concurrency: int
    ) -> ClientProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fanout",
            "--worker",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,
        )
        job = {"host": host, "port": port, "concurrency": concurrency, "clients": list(clients)}
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        await proc.stdin.drain()
        return cls(proc, len(clients))

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            kind = message["type"]
            if kind in ("status", "connected", "closed"):
                self.connected = message["connected"]
                self.failed = message["failed"]
                self.received = message["received"]
                self.closed_by_server = message["closed_by_server"]
            if kind == "connected":
                self.failed_indices = message["failed_indices"]
                self.errors = message["errors"]
                self.done_connecting.set()
            elif kind != "status":
                await self._replies.put(message)
        self.done_connecting.set()
        await self._replies.put({"type": "exited"})

    async def request(self, command: str, timeout_s: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": command}).encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout_s):
            reply = await self._replies.get()
        if reply["type"] == "exited":
            raise BenchError(f"client process {self.pid} exited (code {self.proc.returncode})")
        return reply

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.request("close", timeout_s=30.0)
            except (BenchError, TimeoutError, ConnectionError):
                pass
        try:
            async with asyncio.timeout(10.0):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()


class Session:
    """Clients of one count, spread over the worker processes."""

    def __init__(self, processes: list[ClientProcess]) -> None:
        self.processes = processes

    @classmethod
    async def open(
        cls,
        stack: BenchStack,
        mailboxes: Sequence[Mailbox],
        args: argparse.Namespace,
        label: str,
    ) -> Session:
        count = len(mailboxes)
        procs = max(1, min(args.client_processes, count))
        shares = [list(range(i, count, procs)) for i in range(procs)]
        started = clock()
        processes = [
            await ClientProcess.start(
                HOST,
                stack.ports.http,
                [(i, mailboxes[i].token) for i in share],
                args.connect_concurrency,
            )
            for share in shares
        ]
        session = cls(processes)

        def line() -> str:
            elapsed = clock() - started
            done = session.connected
            return (
                f"{label}: {done:,}/{count:,} connected ({done / elapsed:,.0f}/s), "
                f"{session.failed} failed"
            )

        ticker = asyncio.create_task(tick(line, args.progress_every))
        try:
            await asyncio.gather(*(p.done_connecting.wait() for p in processes))
        finally:
            ticker.cancel()
        progress(line())
        return session

    @property
    def connected(self) -> int:
        return sum(p.connected for p in self.processes)

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.processes)

    @property
    def received(self) -> int:
        return sum(p.received for p in self.processes)

    @property
    def closed_by_server(self) -> int:
        return sum(p.closed_by_server for p in self.processes)

    @property
    def failed_indices(self) -> set[int]:
        return {i for p in self.processes for i in p.failed_indices}

    @property
    def errors(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for p in self.processes:
            total.update(p.errors)
        return dict(total.most_common(10))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def receipts(self) -> list[tuple[int, int, float]]:
        replies = await asyncio.gather(*(p.request("report") for p in self.processes))
        return [(int(i), int(s), float(t)) for reply in replies for i, s, t in reply["receipts"]]

    async def close(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes))


# --- publishing ---------------------------------------------------------------------------


def delivery_events(
    mailboxes: Sequence[Mailbox],
    indices: Iterable[int],
    seq: int,
    run: str,
    mailbox_ids: dict[str, str],
) -> dict[int, DeliveryEvent]:
    """One event like streams' (a 200-character preview, the mailbox record's id) for
    each client in ``indices``."""
    received_at = utcnow()
    return {
        i: DeliveryEvent(
            address=mailboxes[i].address,
            message_id=f"fanout-{run}-{seq}-{i}",
            seq=seq,
            size=5120,
            received_at=received_at,
            sender="bench@example.test",
            from_address="bench@example.test",
            from_name="Fan-out Bench",
            subject=f"fan-out bench {run} round {seq} client {i}",
            preview=PREVIEW,
            message_id_header=f"<fanout.{run}.{seq}.{i}@bench.test>",
            mailbox_id=mailbox_ids.get(mailboxes[i].address, ""),
        )
        for i in indices
    }


async def publish(
    producer: AsyncProducer, events: dict[int, DeliveryEvent], rate: float
) -> dict[int, float]:
    """Publish every event (a burst, or ``rate``/s); when each was handed to ``produce``."""
    encoded = {i: delivery_topic.encode(event) for i, event in events.items()}
    sent_at: dict[int, float] = {}

    async def one(index: int) -> None:
        key, value, headers = encoded[index]
        sent_at[index] = clock()  # AsyncProducer.send produces before its first await
        await producer.send(DELIVERY_TOPIC, key=key, value=value, headers=headers)

    if rate <= 0:
        await asyncio.gather(*(one(i) for i in encoded))
        return sent_at
    tasks = []
    start = clock()
    for n, index in enumerate(encoded):
        delay = start + n / rate - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return sent_at


class KafkaProbe(BroadcastConsumer):
    """The API's own kind of consumer (a group of its own, from the latest offsets) in
    this process, stamping each record in its thread as it comes out of ``poll``: when
    an event could first have reached any consumer. Receipt minus this is the API's
    part; this minus the publication is the producer's and the broker's."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            client_config(settings), DELIVERY_TOPIC, lambda key, value: None, group_prefix="bench"
        )
        self.arrived: list[tuple[bytes | None, bytes | None, float]] = []

    def _dispatch(self, records: list[Any]) -> None:
        at = clock()
        self.arrived.extend((msg.key(), msg.value(), at) for msg in records)

    def take(self, index_of: dict[bytes, int]) -> list[tuple[int, int, float]]:
        """What arrived since the last call, as (client index, seq, when) receipts."""
        arrived, self.arrived = self.arrived, []
        receipts = []
        for key, value, at in arrived:
            index = index_of.get(key or b"")
            if index is not None and value is not None:
                receipts.append((index, int(json.loads(value)["seq"]), at))
        return receipts


# --- one client count --------------------------------------------------------------------------


class Measured:
    """CPU seconds of some processes from now on (user + system, and system alone)."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.since = clock()
        self.before = {pid: cpu_s(pid) for pid in self.pids}

    def used(self) -> float:
        return sum(cpu_s(pid)[0] - self.before[pid][0] for pid in self.pids)

    def used_sys(self) -> float:
        return sum(cpu_s(pid)[1] - self.before[pid][1] for pid in self.pids)


def pct(seconds: float, window_s: float | None) -> float | None:
    return round(100 * seconds / window_s, 1) if window_s else None


async def wait_received(
    session: Session, expected: int, grace_s: float, label: str, every_s: float
) -> None:
    """Until the clients hold ``expected`` receipts, or ``grace_s`` without a new one."""
    seen, quiet_since, last_line = -1, clock(), clock()
    while (have := session.received) < expected:
        if have != seen:
            seen, quiet_since = have, clock()
        elif clock() - quiet_since > grace_s:
            progress(f"{label}: nothing new for {grace_s:g}s, {expected - have} events missing")
            return
        if clock() - last_line > every_s:
            progress(f"{label}: {have:,}/{expected:,} received")
            last_line = clock()
        await asyncio.sleep(0.02)


@dataclass
class RoundOutcome:
    info: dict[str, Any]
    latencies_ms: list[float]
    kafka_ms: list[float] = field(default_factory=list)
    api_part_ms: list[float] = field(default_factory=list)


@dataclass
class Rig:
    """What every round uses."""

    stack: BenchStack
    producer: AsyncProducer
    probe: KafkaProbe | None
    run: str
    args: argparse.Namespace
    #: By address: the mailbox record's id, which streams puts on each delivery.
    mailbox_ids: dict[str, str] = field(default_factory=dict)


def api_parts_ms(clients: RoundLatency, probe: RoundLatency) -> list[float]:
    """Per event received by both: the client's receipt minus the probe's."""
    return [
        (at - probe.received_at[index]) * 1000
        for index, at in clients.received_at.items()
        if index in probe.received_at
    ]


async def run_round(
    rig: Rig,
    session: Session,
    mailboxes: Sequence[Mailbox],
    index_of: dict[bytes, int],
    seq: int,
    rate: float,
    api_pid: int,
    label: str,
) -> RoundOutcome:
    args = rig.args
    failed = session.failed_indices
    indices = [i for i in range(len(mailboxes)) if i not in failed]
    events = delivery_events(mailboxes, indices, seq, rig.run, rig.mailbox_ids)
    expected = session.received + len(events)
    if rig.probe is not None:
        rig.probe.take({})  # forget what came before
    api, clients = Measured([api_pid]), Measured(session.pids)
    sent_at = await publish(rig.producer, events, rate)
    published_s = max(sent_at.values()) - min(sent_at.values()) if sent_at else 0.0
    await wait_received(session, expected, args.grace, label, args.progress_every)
    api_s, api_sys_s, clients_s = api.used(), api.used_sys(), clients.used()
    result = match_receipts(sent_at, seq, await session.receipts())
    window = result.window_s
    summary = _summary(result.latencies_ms)
    info: dict[str, Any] = {
        "seq": seq,
        "rate": rate,
        "events": len(events),
        "received": len(result.latencies_ms),
        "missing": result.missing,
        "duplicates": result.duplicates,
        "stray": result.stray,
        "publish_s": round(published_s, 3),
        "window_s": None if window is None else round(window, 3),
        "api_cpu_s": round(api_s, 3),
        "api_sys_s": round(api_sys_s, 3),
        "api_cpu_pct": pct(api_s, window),
        "api_cpu_us_per_event": round(api_s / len(events) * 1e6, 1) if events else None,
        "clients_cpu_s": round(clients_s, 3),
        "clients_cpu_pct": pct(clients_s, window),
        "latency_ms": summary,
    }
    outcome = RoundOutcome(info, result.latencies_ms)
    via = ""
    if rig.probe is not None:
        kafka = match_receipts(sent_at, seq, rig.probe.take(index_of))
        outcome.kafka_ms, outcome.api_part_ms = kafka.latencies_ms, api_parts_ms(result, kafka)
        info["kafka_ms"] = _summary(outcome.kafka_ms)
        info["kafka_missing"] = kafka.missing
        info["api_part_ms"] = _summary(outcome.api_part_ms)
        via = (
            f"; at a Kafka consumer p50 {info['kafka_ms']['p50']} / p99 "
            f"{info['kafka_ms']['p99']} ms"
        )
    progress(
        f"{label}: p50 {summary['p50']} ms, p99 {summary['p99']} ms, max {summary['max']} ms"
        f"{via}; {len(result.latencies_ms):,}/{len(events):,} received, all within "
        f"{info['window_s']} s (published in {info['publish_s']} s); API CPU "
        f"{info['api_cpu_pct']}%, clients {info['clients_cpu_pct']}%"
    )
    return outcome


async def warm_up(rig: Rig, mailboxes: Sequence[Mailbox], api_pid: int) -> None:
    if rig.args.warm_up_clients <= 0:
        return
    session = await Session.open(rig.stack, mailboxes, rig.args, "warm-up")
    try:
        index_of = {key_bytes(m.address): i for i, m in enumerate(mailboxes)}
        await run_round(rig, session, mailboxes, index_of, 1, 0.0, api_pid, "warm-up")
    finally:
        await session.close()


def start_profiler(api_pid: int, out: Path, rate: int) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise BenchError(f"--profile needs py-spy: {sys.executable} -m pip install py-spy")
    cmd = [str(spy), "record", "--pid", str(api_pid), "--rate", str(rate), "--format", "raw"]
    cmd += ["--threads", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_profiler(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace").strip()[-500:]


def mode_name(rate: float) -> str:
    return "burst" if rate <= 0 else f"{rate:g}/s"


def mode_summary(rate: float, outcomes: list[RoundOutcome]) -> dict[str, Any]:
    """The rounds of one publication mode, pooled."""
    rounds = [o.info for o in outcomes]
    pooled = [v for o in outcomes for v in o.latencies_ms]
    api_cpu = sum(r["api_cpu_s"] for r in rounds)
    api_sys = sum(r["api_sys_s"] for r in rounds)
    windows = sum(r["window_s"] or 0.0 for r in rounds)
    clients_cpu = sum(r["clients_cpu_s"] for r in rounds)
    events = sum(r["events"] for r in rounds)
    return {
        "rate": rate,
        "mode": mode_name(rate),
        # The target is judged at the rates live mail reaches; faster ones are stress figures.
        "judged": 0 < rate <= JUDGED_RATE_MAX,
        "latency_ms": _summary(pooled),
        "kafka_ms": _summary([v for o in outcomes for v in o.kafka_ms]),
        "api_part_ms": _summary([v for o in outcomes for v in o.api_part_ms]),
        "missing": sum(r["missing"] for r in rounds),
        "api_cpu_s": round(api_cpu, 3),
        "api_sys_s": round(api_sys, 3),
        "api_cpu_pct": pct(api_cpu, windows),
        "api_cpu_us_per_event": round(api_cpu / events * 1e6, 1) if events else None,
        "clients_cpu_pct": pct(clients_cpu, windows),
        "rounds": rounds,
        "latencies_ms": [round(v, 2) for v in pooled],
    }


async def run_count(
    rig: Rig, count: int, mailboxes: Sequence[Mailbox], profile_out: Path | None
) -> dict[str, Any]:
    stack, args = rig.stack, rig.args
    api_pid = PidFile(stack.state_dir / "run" / "api.pid").live_pid()
    if api_pid is None:
        raise BenchError("the API process is not running")
    label = f"{count:,} clients"
    await warm_up(rig, mailboxes[-args.warm_up_clients :], api_pid)
    index_of = {key_bytes(m.address): i for i, m in enumerate(mailboxes[:count])}
    await asyncio.sleep(1.0)
    rss_before, fds_before = rss_kib(api_pid), open_fds(api_pid)
    connect = Measured([api_pid])
    session = await Session.open(stack, mailboxes[:count], args, label)
    connect_s, connect_cpu = clock() - connect.since, connect.used()
    modes: list[dict[str, Any]] = []
    profiler: subprocess.Popen[bytes] | None = None
    try:
        idle = Measured([api_pid])
        await asyncio.sleep(args.settle)
        idle_cpu = idle.used()
        rss_after, fds_after = rss_kib(api_pid), open_fds(api_pid)
        connected = session.connected
        kib = per_connection_kib(rss_before, rss_after, connected)
        progress(
            f"{label}: {connected:,} connected in {connect_s:.1f}s; API RSS "
            f"{rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB ({kib} KiB per "
            f"connection), {fds_after - fds_before:,} more fds"
        )
        if profile_out is not None:
            profile_out.parent.mkdir(parents=True, exist_ok=True)
            profiler = start_profiler(api_pid, profile_out, args.profile_rate)
            await asyncio.sleep(1.0)  # py-spy attaches
        seq = 0
        for rate in args.rates:
            outcomes: list[RoundOutcome] = []
            for n in range(1, args.rounds + 1):
                seq += 1
                outcome = await run_round(
                    rig, session, mailboxes[:count], index_of, seq, rate, api_pid,
                    f"{label}, {mode_name(rate)}, round {n}/{args.rounds}",
                )  # fmt: skip
                outcomes.append(outcome)
                await asyncio.sleep(args.pause)
            modes.append(mode_summary(rate, outcomes))
    finally:
        profile_error = stop_profiler(profiler) if profiler is not None else ""
        closed_by_server = session.closed_by_server
        await session.close()
    return {
        "clients": count,
        "connected": connected,
        "connect_failed": session.failed,
        "connect_errors": session.errors,
        "connect_s": round(connect_s, 2),
        "connect_per_s": round(connected / connect_s, 1) if connect_s else None,
        "connect_api_cpu_s": round(connect_cpu, 2),
        "connect_api_cpu_ms_per_connection": (
            round(connect_cpu / connected * 1000, 3) if connected else None
        ),
        "idle_api_cpu_pct": pct(idle_cpu, args.settle),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_connection_kib": kib,
        "fds_before": fds_before,
        "fds_after": fds_after,
        "closed_by_server": closed_by_server,
        "modes": modes,
        "profile": str(profile_out) if profile_out else None,
        "profile_error": profile_error,
    }


# --- mailboxes -------------------------------------------------------------------------------


def load_mailboxes(path: Path) -> list[Mailbox]:
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [Mailbox(address=r["address"], token=r["token"]) for r in records]


def save_mailboxes(path: Path, mailboxes: Sequence[Mailbox]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"address": m.address, "token": m.token} for m in mailboxes]))


async def mailbox_ids(stack: BenchStack, mailboxes: Sequence[Mailbox]) -> dict[str, str]:
    """By address, the id of each mailbox's record, read from the stack's SQLite store
    (streams puts it on each delivery; a stream checks it instead of reading the store)."""
    store = create_store(Settings(store="sqlite", sqlite_path=stack.sqlite_path))
    await store.open()
    try:
        records = [await store.get_mailbox(m.address) for m in mailboxes]
    finally:
        await store.close()
    return {r.address: r.id for r in records if r is not None}


async def mailbox_works(stack: BenchStack, mailbox: Mailbox) -> bool:
    async with stack.client() as client:
        response = await client.get("/api/messages", params={"limit": 1}, headers=mailbox.auth)
    return response.status_code == 200


async def ensure_mailboxes(
    stack: BenchStack, count: int, path: Path, args: argparse.Namespace
) -> list[Mailbox]:
    """``count`` mailboxes: those of ``path`` if they still work, and new ones."""
    have = load_mailboxes(path)
    if have and not (await mailbox_works(stack, have[0]) and await mailbox_works(stack, have[-1])):
        progress(f"the mailboxes in {path} no longer work: creating new ones")
        have = []
    if len(have) >= count:
        progress(f"reusing {count:,} mailboxes from {path}")
        return have[:count]
    made = list(have)
    started, todo = clock(), count - len(have)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(todo):
        queue.put_nowait(n)

    async def creator() -> None:
        async with stack.client() as client:
            while not queue.empty():
                queue.get_nowait()
                made.append(await create_mailbox(client))
                client.cookies.clear()  # the browser's cookies: not ours to keep

    def line() -> str:
        done = len(made) - len(have)
        return f"mailboxes: {done:,}/{todo:,} created ({done / (clock() - started):,.0f}/s)"

    progress(f"creating {todo:,} mailboxes ({args.create_concurrency} at a time)")
    ticker = asyncio.create_task(tick(line, args.progress_every))
    try:
        await asyncio.gather(*(creator() for _ in range(args.create_concurrency)))
    finally:
        ticker.cancel()
        save_mailboxes(path, made)
    progress(line())
    return made


# --- the run ---------------------------------------------------------------------------------


def stack_env(args: argparse.Namespace) -> dict[str, str]:
    """The live-stream caps of the bench stack; everything else is tmpmail's default."""
    return {
        "TMPMAIL_SSE_MAX_CONNECTIONS": str(max(args.clients) + args.warm_up_clients + 100),
        "TMPMAIL_SSE_MAX_PER_MAILBOX": str(args.sse_max_per_mailbox),
        "TMPMAIL_SSE_QUEUE_SIZE": str(args.sse_queue_size),
        "TMPMAIL_LOG_LEVEL": "WARNING",  # no line per connection in the api's log
    }


async def bench(
    args: argparse.Namespace, stack: BenchStack, started_at: str
) -> list[dict[str, Any]]:
    run = secrets.token_hex(3)
    total = max(args.clients) + args.warm_up_clients
    mailboxes = await ensure_mailboxes(stack, total, stack.state_dir / "mailboxes.json", args)
    ids = await mailbox_ids(stack, mailboxes)
    settings = Settings(kafka_bootstrap=f"{HOST}:{stack.ports.kafka}")
    results = []
    for n, count in enumerate(args.clients):
        if n > 0 and not args.no_restart:
            progress("restarting the stack: a fresh API process for the next count")
            stack.down()
            stack.up()
        producer = AsyncProducer(producer_config(settings))
        await producer.start()
        probe = None if args.no_probe else KafkaProbe(settings)
        try:
            if probe is not None:
                await probe.start()
                if not await probe.wait_assigned(60.0):
                    raise BenchError("the Kafka probe got no partitions within 60 s")
            profile_out = (
                RESULTS_DIR / f"fanout-{started_at}-{count}.pyspy.txt" if args.profile else None
            )
            rig = Rig(stack, producer, probe, run, args, ids)
            results.append(await run_count(rig, count, mailboxes, profile_out))
        finally:
            if probe is not None:
                await probe.stop()
            await producer.stop()
    return results


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    header = (
        "clients",
        "published",
        "KiB/conn",
        "p50 ms",
        "p99 ms",
        "max ms",
        "missing",
        "Kafka p50/p99",
        "API part p50/p99",
        "API CPU",
        "us/event",
        "clients CPU",
    )
    rows = [header]
    for r in results:
        for m in r["modes"]:
            lat, kafka, part = m["latency_ms"], m["kafka_ms"], m["api_part_ms"]
            rows.append(
                (
                    f"{r['connected']:,}/{r['clients']:,}",
                    m["mode"],
                    ms(r["rss_per_connection_kib"]),
                    ms(lat["p50"]),
                    ms(lat["p99"]),
                    ms(lat["max"]),
                    f"{m['missing']:,}",
                    f"{ms(kafka['p50'])} / {ms(kafka['p99'])}",
                    f"{ms(part['p50'])} / {ms(part['p99'])}",
                    "-" if m["api_cpu_pct"] is None else f"{m['api_cpu_pct']:.0f}%",
                    ms(m["api_cpu_us_per_event"]),
                    "-" if m["clients_cpu_pct"] is None else f"{m['clients_cpu_pct']:.0f}%",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        f"tmpmail live fan-out: one API process, one SSE client per mailbox; per mode "
        f"{args.rounds} rounds of one event per client",
        "latency: publication (right before produce) -> the client's read; CPU over first "
        "publication -> last receipt, in % of one core; us/event: API CPU per event;",
        "Kafka: publication -> a consumer of the bench's own (the broker's part, not the API's);",
        "API part: the client's receipt - that consumer's, per event (an estimate)",
        "",
    ]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    for r in results:
        lines.append(
            f"{r['clients']:>6,}: RSS {r['rss_before_kib'] / 1024:.1f} -> "
            f"{r['rss_after_kib'] / 1024:.1f} MiB; connected in {r['connect_s']:.1f}s "
            f"({r['connect_api_cpu_ms_per_connection']} ms API CPU each); idle API CPU "
            f"{r['idle_api_cpu_pct']}%; dropped {r['closed_by_server']}"
        )
        for m in r["modes"]:
            per_round = ", ".join(ms(x["latency_ms"]["p99"]) for x in m["rounds"])
            windows = ", ".join(ms(x["window_s"]) for x in m["rounds"])
            lines.append(
                f"        {m['mode']:>7}: p99 per round {per_round} ms; all delivered within "
                f"{windows} s; API system time {m['api_sys_s']:.2f} of {m['api_cpu_s']:.2f} s"
            )
    for r in results:
        if r["clients"] != TARGET_CLIENTS:
            continue
        for m in r["modes"]:
            p99 = m["latency_ms"]["p99"]
            if p99 is None:
                continue
            met = p99 <= TARGET_P99_MS and not m["missing"]
            verdict = ("met" if met else "MISSED") if m["judged"] else "not judged (stress)"
            lines.append(
                f"target: {TARGET_CLIENTS:,} clients, p99 <= {TARGET_P99_MS:g} ms, "
                f"{m['mode']}: {verdict} ({ms(p99)} ms)"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smtp-port", type=int, default=25525)
    parser.add_argument("--http-port", type=int, default=28700)
    parser.add_argument("--kafka-port", type=int, default=29592)
    parser.add_argument("--controller-port", type=int, default=29593)
    parser.add_argument("--state-dir", type=Path, default=BENCH_DIR / "fanout")
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the previous run's broker log, store and mailboxes (faster start)",
    )
    parser.add_argument(
        "--clients",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1000, 5000, 10000],
        help="client counts, comma-separated (default: 1000,5000,10000)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="events per client and count")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(n) for n in text.split(",")],
        default=[2000.0, 5000.0, 0.0],
        help="publication modes, comma-separated events/s, 0 for a burst (default: "
        "2000,5000,0; one streams worker delivers under 2,000/s, a replay about 4,000/s; "
        "the target is judged up to 2,000/s, faster modes are stress figures)",
    )
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--connect-concurrency", type=int, default=64, help="connections opening at once, each"
    )
    parser.add_argument("--create-concurrency", type=int, default=16, help="mailbox creations")
    parser.add_argument("--warm-up-clients", type=int, default=50)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds between connecting and RSS"
    )
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument(
        "--grace", type=float, default=20.0, help="stop waiting this long after the last event"
    )
    parser.add_argument("--no-restart", action="store_true", help="one API process for every count")
    parser.add_argument("--sse-queue-size", type=int, default=64, help="TMPMAIL_SSE_QUEUE_SIZE")
    parser.add_argument(
        "--sse-max-per-mailbox", type=int, default=8, help="TMPMAIL_SSE_MAX_PER_MAILBOX"
    )
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="no Kafka consumer of this bench's own beside the API's (see KafkaProbe)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy record the API process during rounds"
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument("--progress-every", type=float, default=2.0, help="seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(worker_main())
        return 0
    started_at = stamp()
    ports = Ports(args.smtp_port, args.http_port, args.kafka_port, args.controller_port)
    stack = BenchStack(args.state_dir, ports, extra_env=stack_env(args))
    info = machine()
    progress(f"{info['cpus']} CPUs, load average {info['load_before'][0]:.2f} before the run")
    with sigterm_as_interrupt():
        try:
            fds = raise_fd_limit(max(args.clients) + args.warm_up_clients + FD_HEADROOM)
            progress(f"open files: soft limit raised to {fds:,} (the stack inherits it)")
            if not args.keep_data:
                stack.wipe_data()
                (args.state_dir / "mailboxes.json").unlink(missing_ok=True)
            stack.up()
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                results = runner.run(bench(args, stack, started_at))
        except BenchError as exc:
            print(f"bench.fanout: {exc}", file=sys.stderr)
            if stack.started:
                print(stack.log_tails(), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench.fanout: interrupted", file=sys.stderr)
            return 130
        finally:
            stack.down()
    record = {
        "bench": "fanout",
        "started_at": started_at,
        "git": git_state(),
        "machine": info,
        "load_after": list(os.getloadavg()),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "stack_env": stack_env(args),
        "counts": results,
    }
    print()
    print(table(results, args))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"fanout-{started_at}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
