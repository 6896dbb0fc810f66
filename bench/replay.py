"""How fast ``tmpmail replay --from-beginning`` reprocesses the raw-mail topic.

Run it from the checkout (a few minutes; the first run also provisions Kafka in the bench
state directory):

    .venv/bin/python -m bench.replay
    .venv/bin/python -m bench.replay --mails 50000 --mailboxes 50

It starts the whole stack (default SQLite store) with ``python -m deploy.cli up
--detach`` in ``.tmpmail-bench/replay`` on ports of its own (SMTP 24525, HTTP 28600,
Kafka 29492/29493), the previous run's broker log, streams state and store removed first
so the topic holds this run's mail only; ``down`` at the end, on errors and on Ctrl-C
too. Then:

1. creates ``--mailboxes`` mailboxes (``POST /api/mailboxes``) and copies the SQLite
   store as it is then, with the mailboxes and no mail (SQLite's backup API), for step 5;
2. fills ``tmpmail.raw-mail.v1`` with ``--mails`` unique mails of ``--size`` bytes,
   round robin over the mailboxes, produced directly with the project's producer
   (``bus.AsyncProducer``, ``publish_many(raw_mail_topic, ...)``) with the envelope and
   ``Received:`` line ingest gives a mail;
3. waits until streams has stored all of them (the newest ``seq`` of each mailbox, then
   an exact count through ``GET /api/messages``);
4. runs ``python -m deploy.cli replay --from-beginning`` (the stack's ``TMPMAIL_*``)
   ``--runs`` times: every record is already stored, so each should report them all
   unchanged;
5. runs it once more with ``TMPMAIL_SQLITE_PATH`` on the copy of step 1, an empty store
   that has the mailboxes (same addresses, tokens and creation times): each record
   should be stored anew (and announced on the delivery topic, which the running api
   reads). ``--no-empty-store`` skips it.

For each replay it reports records/s over the process's wall time and over the replay's
own reading (from its first line, ``N records in P partition(s)``, to its last progress
line: without the interpreter's start and Kafka's metadata), and its summary. Target:
>= 2,000 mails/s. It prints progress, a table, and writes JSON to
``.tmpmail-bench/results/replay-<timestamp>.json``. ``make bench`` (:mod:`bench.run`)
runs steps 1 to 5 with :func:`measure` on a stack of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as bench/replay.py: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.cpu import CpuMeter
from bench.stack import (
    BENCH_DIR,
    REPO,
    RESULTS_DIR,
    BenchError,
    BenchStack,
    Mailbox,
    Ports,
    count_messages,
    create_mailbox,
    git_state,
    machine,
    newest_seq,
    progress,
    sigterm_as_interrupt,
    stamp,
)
from bus import AsyncProducer, producer_config
from ingest import policy
from schemas.records import RawMailEnvelope, new_ingest_id, utcnow
from schemas.runtime import loop_factory
from schemas.settings import Settings
from schemas.topics import raw_mail_topic

SENDER = "bench@example.test"
HELO = "replay.bench.test"
CLIENT_IP = "127.0.0.1"
HOSTNAME = "mx.tmpmail.test"
TARGET_PER_S = 2000.0
PRODUCE_CHUNK = 2000
REPLAY_TIMEOUT_S = 1800.0

_COUNT_LINES = {
    "new": re.compile(r"^\s*new \(stored now\)\s+([\d,]+)"),
    "re_parsed": re.compile(r"^\s*re-parsed \(updated\)\s+([\d,]+)"),
    "unchanged": re.compile(r"^\s*unchanged\s+([\d,]+)"),
    "kept_deleted": re.compile(r"^\s*deleted, kept deleted\s+([\d,]+)"),
    "expired": re.compile(r"^\s*expired\s+([\d,]+)"),
    "errors": re.compile(r"^\s*errors\s+([\d,]+)"),
}
_READ_LINE = re.compile(r"^read ([\d,]+) records")
_TOTAL_LINE = re.compile(r"^replay: ([\d,]+) records in (\d+) partition")
_DROPPED_LINE = re.compile(r"^\s*dropped: (\S+)\s+([\d,]+)")


# --- filling the topic ---------------------------------------------------------------------


def make_mail(run: str, n: int, recipient: str, size: int) -> bytes:
    """A unique RFC 5322 mail of about ``size`` bytes (CRLF lines)."""
    subject = f"bench-replay {run} {n}"
    head = (
        f"From: Bench <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <replay.{run}.{n}@bench.test>\r\nDate: {formatdate()}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    first = f"{subject}: ".encode().ljust(74, b"x") + b"\r\n"
    line = b"y" * 74 + b"\r\n"
    return head + first + line * max(0, (size - len(head) - len(first)) // len(line))


def raw_record(content: bytes, recipient: str) -> tuple[RawMailEnvelope, bytes]:
    """The envelope and value ingest would publish for ``content`` to ``recipient``
    (see ``ingest/handler.py``)."""
    ingest_id = new_ingest_id()
    received_at = utcnow()
    trace = policy.received_header(
        helo=HELO,
        client_ip=CLIENT_IP,
        hostname=HOSTNAME,
        protocol=policy.protocol_name(esmtp=True, tls=False, smtputf8=False),
        ingest_id=ingest_id,
        recipient=recipient,
        received_at=received_at,
    )
    envelope = RawMailEnvelope(
        ingest_id=ingest_id,
        sender=SENDER,
        recipient=recipient,
        client_address=CLIENT_IP,
        helo=HELO,
        tls=False,
        received_at=received_at,
        body_sha256=hashlib.sha256(content).hexdigest(),
        recipients=1,
    )
    return envelope, trace + content


async def fill_topic(
    stack: BenchStack, mailboxes: list[Mailbox], count: int, size: int, run: str
) -> dict[str, Any]:
    settings = Settings(
        state_dir=stack.state_dir, kafka_bootstrap=stack.env["TMPMAIL_KAFKA_BOOTSTRAP"]
    )
    producer = AsyncProducer(producer_config(settings))
    await producer.start()
    began = time.perf_counter()
    sent = 0
    try:
        while sent < count:
            chunk = []
            for n in range(sent, min(count, sent + PRODUCE_CHUNK)):
                recipient = mailboxes[n % len(mailboxes)].address
                chunk.append(raw_record(make_mail(run, n, recipient, size), recipient))
            await producer.publish_many(raw_mail_topic, chunk)
            sent += len(chunk)
            if sent % (PRODUCE_CHUNK * 5) == 0 or sent == count:
                progress(f"fill: {sent:,}/{count:,} raw-mail records acknowledged")
    finally:
        await producer.stop()
    seconds = time.perf_counter() - began
    return {"records": sent, "seconds": round(seconds, 3), "per_s": round(sent / seconds, 1)}


async def wait_stored(
    client: httpx.AsyncClient, mailboxes: list[Mailbox], count: int, since: float, grace_s: float
) -> dict[str, Any]:
    """Until the mailboxes' newest seqs add up to ``count`` (SQLite's seq has no gaps), or
    ``grace_s`` without progress; then the exact count, page by page."""
    last, quiet_since, last_line = -1, time.perf_counter(), 0.0
    while True:
        seqs = await asyncio.gather(*(newest_seq(client, m) for m in mailboxes))
        total = sum(seqs)
        t = time.perf_counter()
        if t - last_line >= 2 or total >= count:
            progress(f"streams: {total:,}/{count:,} stored")
            last_line = t
        if total >= count:
            break
        if total != last:
            last, quiet_since = total, t
        elif t - quiet_since > grace_s:
            raise BenchError(
                f"streams stored {total:,} of {count:,} mails and nothing more for {grace_s:g}s"
            )
        await asyncio.sleep(0.1)
    seconds = time.perf_counter() - since
    counted = sum(await asyncio.gather(*(count_messages(client, m) for m in mailboxes)))
    progress(f"streams: {counted:,} messages listed by the api")
    if counted != count:
        raise BenchError(f"the api lists {counted:,} messages; {count:,} were produced")
    return {"stored": counted, "seconds_from_fill": round(seconds, 3)}


def snapshot_store(source: Path, target: Path) -> None:
    """Copy the SQLite store as it is now (the backup API: consistent beside writers)."""
    target.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


# --- the replays ---------------------------------------------------------------------------


@dataclass
class ReplayRun:
    label: str
    exit_code: int = 0
    wall_s: float = 0.0
    reading_s: float | None = None
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)

    @property
    def per_s_wall(self) -> float | None:
        return round(self.total / self.wall_s, 1) if self.total and self.wall_s else None

    @property
    def per_s_reading(self) -> float | None:
        if not self.total or not self.reading_s:
            return None
        return round(self.total / self.reading_s, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "exit_code": self.exit_code,
            "wall_s": round(self.wall_s, 3),
            "reading_s": None if self.reading_s is None else round(self.reading_s, 3),
            "records": self.total,
            "per_s_wall": self.per_s_wall,
            "per_s_reading": self.per_s_reading,
            "counts": self.counts,
            "dropped": self.dropped,
            "summary": self.summary,
            "tail": self.tail,
        }


def run_replay(label: str, env: dict[str, str]) -> ReplayRun:
    """``python -m deploy.cli replay --from-beginning``, its stderr read as it comes (its
    progress line is rewritten with CR), each line timed."""
    progress(f"{label}: python -m deploy.cli replay --from-beginning")
    result = ReplayRun(label)
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "replay", "--from-beginning"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[tuple[float, str]] = []
    pending = b""
    last_echo = 0.0
    try:
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            t = time.perf_counter()
            if not chunk:
                break
            pending += chunk
            *done, pending = re.split(rb"[\r\n]", pending)
            for raw in done:
                text = raw.decode(errors="replace").rstrip()
                if text:
                    lines.append((t, text))
                    if t - last_echo >= 2 or not text.startswith("replay: "):
                        progress(f"  {text}")
                        last_echo = t
            if t - began > REPLAY_TIMEOUT_S:
                raise BenchError(f"{label}: replay still running after {REPLAY_TIMEOUT_S:g}s")
        if pending.strip():
            lines.append((time.perf_counter(), pending.decode(errors="replace").rstrip()))
        result.exit_code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result.wall_s = time.perf_counter() - began
    parse_replay_output(result, lines)
    if lines and lines[-1][1].startswith("replay: "):
        progress(f"  {lines[-1][1]}")
    progress(
        f"{label}: exit {result.exit_code}, {result.total} records in {result.wall_s:.2f}s "
        f"({result.per_s_wall} /s wall, {result.per_s_reading} /s reading)"
    )
    return result


def parse_replay_output(result: ReplayRun, lines: list[tuple[float, str]]) -> None:
    started_at = None
    ended_at = None
    in_summary = False
    for t, text in lines:
        total = _TOTAL_LINE.match(text)
        if total:
            result.total = int(total.group(1).replace(",", ""))
            started_at = t
            continue
        if text.startswith("replay: "):
            ended_at = t  # the last progress line: the replay's last batch is done
            continue
        if _READ_LINE.match(text):
            in_summary = True
        if in_summary:
            result.summary.append(text)
            for name, pattern in _COUNT_LINES.items():
                found = pattern.match(text)
                if found:
                    result.counts[name] = int(found.group(1).replace(",", ""))
            dropped = _DROPPED_LINE.match(text)
            if dropped:
                result.dropped[dropped.group(1)] = int(dropped.group(2).replace(",", ""))
    result.tail = [text for _, text in lines[-15:]]
    if started_at is not None and ended_at is not None and ended_at > started_at:
        result.reading_s = ended_at - started_at


def check(run: ReplayRun, expect: str, count: int) -> str:
    """'ok', or what differs from ``count`` records all ``expect`` (new or unchanged)."""
    problems = []
    if run.exit_code != 0:
        problems.append(f"exit {run.exit_code}")
    if run.total != count:
        problems.append(f"{run.total} records, not {count}")
    if run.counts.get(expect) != count:
        problems.append(f"{expect} {run.counts.get(expect)}, not {count}")
    others = {k: v for k, v in run.counts.items() if k != expect and v}
    if others or run.dropped:
        problems.append(f"also {others} dropped {run.dropped}")
    return "ok" if not problems else "; ".join(problems)


# --- the run -------------------------------------------------------------------------------


async def prepare(args: argparse.Namespace, stack: BenchStack, snapshot: Path | None) -> dict:
    run = f"{int(time.time())}"
    async with stack.client() as client:
        mailboxes = [await create_mailbox(client) for _ in range(args.mailboxes)]
        progress(f"{len(mailboxes)} mailboxes, {mailboxes[0].address} ...")
        if snapshot is not None:
            snapshot_store(stack.sqlite_path, snapshot)
            progress(f"copied the store with its mailboxes and no mail to {snapshot}")
        began = time.perf_counter()
        fill = await fill_topic(stack, mailboxes, args.mails, args.size, run)
        progress(f"fill: {fill['records']:,} records in {fill['seconds']:.1f}s")
        stored = await wait_stored(client, mailboxes, args.mails, began, args.grace)
    return {"mailboxes": len(mailboxes), "fill": fill, "streams": stored}


def table(report: dict, args: argparse.Namespace) -> str:
    prep = report["prepared"]
    lines = [
        f"tmpmail replay --from-beginning, {args.mails:,} unique {args.size}-byte mails over "
        f"{prep['mailboxes']} mailboxes, SQLite store; target >= {TARGET_PER_S:,.0f} mails/s",
        f"(topic filled in {prep['fill']['seconds']:.1f}s, {prep['fill']['per_s']:,.0f} "
        f"records/s; streams had stored them {prep['streams']['seconds_from_fill']:.1f}s "
        "after the fill began)",
        "",
        "run                      records   wall s   /s wall   reading s   /s reading   "
        "target/reading   as expected",
    ]
    for run in report["replays"]:
        reading = run["reading_s"]
        per_wall, per_read = run["per_s_wall"], run["per_s_reading"]
        best = per_read or per_wall
        verdict = "-" if best is None else ("ok" if best >= TARGET_PER_S else "MISSED")
        lines.append(
            f"{run['label']:<22} {run['records'] or 0:>9,} {run['wall_s']:>8.2f} "
            f"{'-' if per_wall is None else f'{per_wall:,.0f}':>9} "
            f"{'-' if reading is None else f'{reading:.2f}':>11} "
            f"{'-' if per_read is None else f'{per_read:,.0f}':>12}   {verdict:<14}   "
            f"{run['check']}"
        )
    if report.get("empty_store_skipped"):
        lines.append(f"(into an empty store: skipped, {report['empty_store_skipped']})")
    for run in report["replays"]:
        lines += ["", f"{run['label']}, the replay's summary:"]
        lines += [f"    {line}" for line in run["summary"]] or ["    (none)"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smtp-port", type=int, default=24525)
    parser.add_argument("--http-port", type=int, default=28600)
    parser.add_argument("--kafka-port", type=int, default=29492)
    parser.add_argument("--controller-port", type=int, default=29493)
    parser.add_argument("--state-dir", type=Path, default=BENCH_DIR / "replay")
    parser.add_argument("--mailboxes", type=int, default=20)
    parser.add_argument(
        "--streams", type=int, metavar="N", help="streams workers (TMPMAIL_STREAMS_PROCESSES)"
    )
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=5120, help="mail size in bytes")
    parser.add_argument("--runs", type=int, default=2, help="replays over the full store")
    parser.add_argument(
        "--no-empty-store", action="store_true", help="skip the replay into an empty store"
    )
    parser.add_argument(
        "--grace", type=float, default=60.0, help="seconds streams may store nothing new"
    )
    return parser.parse_args(argv)


def measure(
    args: argparse.Namespace,
    stack: BenchStack,
    snapshot: Path | None,
    meter: CpuMeter | None = None,
) -> dict:
    """Steps 1 to 5 on ``stack``, which is up and whose raw-mail topic holds no mail yet;
    ``snapshot`` is where the empty store's copy goes (None: no replay into it). With a
    ``meter``, each replay's record has the CPU of every process over it (``cpu``)."""
    if snapshot is not None:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        prepared = runner.run(prepare(args, stack, snapshot))

    def replay(label: str, env: dict[str, str], expect: str) -> dict[str, Any]:
        with meter.window() if meter is not None else nullcontext() as window:
            run = run_replay(label, env)
        cpu = {} if window is None else window.as_dict()
        return {**run.as_dict(), "check": check(run, expect, args.mails), "cpu": cpu}

    replays = [
        replay(f"full store, run {n}", stack.env, "unchanged") for n in range(1, args.runs + 1)
    ]
    if snapshot is not None:
        env = {**stack.env, "TMPMAIL_SQLITE_PATH": str(snapshot)}
        replays.append(replay("into an empty store", env, "new"))
    failed = [r for r in replays if r["exit_code"] != 0]
    if failed:
        progress(f"{len(failed)} replay(s) failed; their output's tail:")
        for r in failed:
            print(f"--- {r['label']}", *r["tail"], sep="\n", file=sys.stderr)
    return {
        "prepared": prepared,
        "replays": replays,
        "empty_store_skipped": "--no-empty-store" if snapshot is None else "",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = stamp()
    ports = Ports(args.smtp_port, args.http_port, args.kafka_port, args.controller_port)
    workers = {"TMPMAIL_STREAMS_PROCESSES": str(args.streams)} if args.streams else {}
    stack = BenchStack(args.state_dir, ports, extra_env=workers)
    snapshot = None if args.no_empty_store else args.state_dir / "empty" / "mailboxes.sqlite3"
    info = machine()
    progress(f"{info['cpus']} CPUs, load average {info['load_before'][0]:.2f} before the run")
    with sigterm_as_interrupt():
        try:
            stack.wipe_data()
            stack.up()
            report = measure(args, stack, snapshot)
        except BenchError as exc:
            print(f"bench.replay: {exc}", file=sys.stderr)
            if stack.started:
                print(stack.log_tails(), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench.replay: interrupted", file=sys.stderr)
            return 130
        finally:
            stack.down()
    replays = report["replays"]
    record = {
        "bench": "replay",
        "started_at": started_at,
        "git": git_state(),
        "machine": info,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "target_per_s": TARGET_PER_S,
        **report,
    }
    print()
    print(table(report, args))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"replay-{started_at}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0 if all(r["exit_code"] == 0 for r in replays) else 1


if __name__ == "__main__":
    sys.exit(main())
