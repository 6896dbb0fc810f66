"""Store growth through the HTTP API: list and get latency with 1k, 10k and 100k messages.

Run it from the checkout (a few minutes; the 100k store is about 600 MB, removed after):

    .venv/bin/python -m bench.store_http
    .venv/bin/python -m bench.store_http --sizes 1000,10000 --queries 200

It starts the whole stack (default SQLite store) with ``python -m deploy.cli up --detach``
in ``.tmpmail-bench/store-http`` on ports of its own (SMTP 26525, HTTP 28800, Kafka
29692/29693), its previous data removed first; ``down`` at the end, on errors and on
Ctrl-C too. ``make bench`` (:mod:`bench.run`) calls :func:`measure` on a stack of its own.

1. ``--mailboxes`` mailboxes are created through ``POST /api/mailboxes``;
2. the stack's SQLite file is filled directly through the store port, which is fast and
   what streams itself does (``SQLiteStore.store_messages``, batches of 500, from a
   second process as streams is one): messages whose summary and document are a real
   parse (``mail.parse`` of :mod:`bench.parse`'s typical 5 KB multipart mails), with their
   raw bytes, spread round robin over the mailboxes, so that the API reads what it reads
   for real mail;
3. at each size, after a warm-up, ``--queries`` sequential requests of each kind go over
   HTTP with httpx (one keep-alive connection, the mailbox's bearer token):
   ``GET /api/messages?limit=20`` of a random mailbox, and ``GET /api/messages/{id}`` of a
   random message; and the same two reads through the port (``list_messages``,
   ``get_message``), so that the HTTP part is the difference.

Target: at 100k, within 1.5x of the 1k latency (p50), for list and for get. It prints
progress and a table, and writes JSON to ``.tmpmail-bench/results/store-http-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as bench/store_http.py: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.cpu import CpuMeter
from bench.parse import typical_mails
from bench.stack import (
    BENCH_DIR,
    RESULTS_DIR,
    BenchError,
    BenchStack,
    Mailbox,
    Ports,
    create_mailbox,
    git_state,
    machine,
    percentile,
    progress,
    sigterm_as_interrupt,
    stamp,
)
from bench.store_latency import BATCH, WARM_UP_S, fill
from mail import parse
from schemas.mail import summary_fields
from schemas.records import message_id_for
from schemas.runtime import loop_factory
from store import NewMessage
from store.sqlite import SQLiteStore

SIZES = (1_000, 10_000, 100_000)
MAILBOXES = 50
QUERIES = 300
WITHIN = 1.5
TEMPLATES = 32
LIST_LIMIT = 20
#: Messages stored between two progress lines (whole batches).
FILL_STEP = 20 * BATCH

Say = Callable[[str], None]


class GrowthMessages:
    """Message ``n``: a real parse of one of the typical mails, to mailbox ``n % M``."""

    def __init__(self, run: str, addresses: Sequence[str], now: datetime) -> None:
        self.run = run
        self.addresses = list(addresses)
        self.now = now
        self.raws = typical_mails(TEMPLATES, seed=11)
        self.parsed = [parse(raw) for raw in self.raws]

    def address(self, n: int) -> str:
        return self.addresses[n % len(self.addresses)]

    def ingest_id(self, n: int) -> str:
        return f"growth-{self.run}-{n:07d}"

    def message_id(self, n: int) -> str:
        return message_id_for(self.ingest_id(n), self.address(n))

    def __call__(self, n: int) -> NewMessage:
        result = self.parsed[n % TEMPLATES]
        document = result.mail
        return NewMessage(
            **summary_fields(document),
            id=self.message_id(n),
            address=self.address(n),
            ingest_id=self.ingest_id(n),
            received_at=self.now,
            expires_at=self.now + timedelta(days=7),
            raw=self.raws[n % TEMPLATES],
            document=document,
            attachment_data=result.attachment_data,
            parser_version=document.parser_version,
        )


async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """Milliseconds of ``count`` sequential awaits of ``call()``, after a warm-up."""
    warm_until = time.perf_counter() + WARM_UP_S
    while time.perf_counter() < warm_until:
        await call()
    timings = []
    for _ in range(count):
        began = time.perf_counter_ns()
        await call()
        timings.append((time.perf_counter_ns() - began) / 1e6)
    return timings


def summary(timings: list[float]) -> dict[str, float | int | None]:
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "count": len(timings),
        "p50_ms": r(percentile(timings, 50)),
        "p95_ms": r(percentile(timings, 95)),
        "p99_ms": r(percentile(timings, 99)),
        "max_ms": r(max(timings) if timings else None),
    }


async def _http_calls(
    client: httpx.AsyncClient,
    mailboxes: dict[str, Mailbox],
    messages: GrowthMessages,
    size: int,
    rng: random.Random,
) -> dict[str, Callable[[], Awaitable[object]]]:
    async def list_newest() -> object:
        mailbox = mailboxes[rng.choice(messages.addresses)]
        response = await client.get(
            "/api/messages", params={"limit": LIST_LIMIT}, headers=mailbox.auth
        )
        if response.status_code != 200 or not response.json()["messages"]:
            raise BenchError(f"GET /api/messages: {response.status_code} {response.text[:200]}")
        return response

    async def get_one() -> object:
        n = rng.randrange(size)
        mailbox = mailboxes[messages.address(n)]
        response = await client.get(f"/api/messages/{messages.message_id(n)}", headers=mailbox.auth)
        if response.status_code != 200:
            raise BenchError(
                f"GET /api/messages/{{id}}: {response.status_code} {response.text[:200]}"
            )
        return response

    return {"list": list_newest, "get": get_one}


def _port_calls(
    store: SQLiteStore, messages: GrowthMessages, size: int, rng: random.Random
) -> dict[str, Callable[[], Awaitable[object]]]:
    def list_newest() -> Awaitable[object]:
        return store.list_messages(rng.choice(messages.addresses), limit=LIST_LIMIT)

    def get_one() -> Awaitable[object]:
        n = rng.randrange(size)
        return store.get_message(messages.address(n), messages.message_id(n))

    return {"list": list_newest, "get": get_one}


async def measure(
    stack: BenchStack,
    sizes: Sequence[int] = SIZES,
    queries: int = QUERIES,
    mailbox_count: int = MAILBOXES,
    say: Say = progress,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Fill the running ``stack``'s SQLite store to each size and time list and get,
    over HTTP and through the port. The store should hold no messages yet. With a
    ``meter``, each size's entry has the CPU of every process over its HTTP reads."""
    rng = random.Random(7)
    run = f"{int(time.time())}"
    async with stack.client() as client:
        boxes = [await create_mailbox(client) for _ in range(mailbox_count)]
        say(f"store growth: {len(boxes)} mailboxes created through the API")
        mailboxes = {box.address: box for box in boxes}
        messages = GrowthMessages(run, list(mailboxes), datetime.now(UTC))
        store = SQLiteStore(stack.sqlite_path)
        await store.open()
        try:
            results: dict[str, Any] = {}
            filled = 0
            for size in sorted(sizes):
                began, first = time.perf_counter(), filled
                while filled < size:
                    step = min(size, filled + FILL_STEP)
                    await fill(store, filled, step, messages)
                    filled = step
                    say(f"store growth: {filled:,}/{size:,} messages stored through the port")
                rate = (size - first) / (time.perf_counter() - began)
                # Flush the dirty pages of the fill now, not during the timed reads.
                await asyncio.to_thread(os.sync)
                megabytes = stack.sqlite_path.stat().st_size / 1e6
                say(
                    f"store growth: {size:,} messages ({rate:,.0f}/s filled, {megabytes:,.0f} MB);"
                    f" timing {queries} of each read"
                )
                entry: dict[str, Any] = {"fill_per_s": round(rate, 1), "file_mb": round(megabytes)}
                for path, calls in (
                    ("http", await _http_calls(client, mailboxes, messages, size, rng)),
                    ("port", _port_calls(store, messages, size, rng)),
                ):
                    with meter.window() if meter and path == "http" else nullcontext() as window:
                        for name, call in calls.items():
                            timings = await timed(call, queries)
                            entry[f"{path}_{name}"] = {
                                **summary(timings),
                                "latencies_ms": [round(t, 3) for t in timings],
                            }
                    if window is not None:
                        entry["cpu"] = window.as_dict()
                say(
                    f"store growth: {size:,}: HTTP list p50 {entry['http_list']['p50_ms']} ms, "
                    f"get p50 {entry['http_get']['p50_ms']} ms; port list "
                    f"{entry['port_list']['p50_ms']} ms, get {entry['port_get']['p50_ms']} ms"
                )
                results[str(size)] = entry
        finally:
            await store.close()
    return {
        "sizes": results,
        "mailboxes": mailbox_count,
        "queries": queries,
        "list_limit": LIST_LIMIT,
        "ratios": ratios(results),
        "within": WITHIN,
    }


def ratios(sizes: dict[str, Any]) -> dict[str, float | None]:
    """Largest ÷ smallest size's p50 (and p95), per path and read: ``http_list_p50``..."""
    if len(sizes) < 2:
        return {}
    ordered = sorted(sizes, key=int)
    small, large = sizes[ordered[0]], sizes[ordered[-1]]
    found: dict[str, float | None] = {}
    for key in ("http_list", "http_get", "port_list", "port_get"):
        for p in ("p50_ms", "p95_ms"):
            a, b = small.get(key, {}).get(p), large.get(key, {}).get(p)
            found[f"{key}_{p.removesuffix('_ms')}"] = round(b / a, 3) if a and b else None
    return found


def table(report: dict[str, Any]) -> str:
    sizes = report["sizes"]
    lines = [
        f"store growth: {report['mailboxes']} mailboxes, {report['queries']} sequential reads "
        f"of each kind per size, p50 / p95 ms",
        "",
        f"{'messages':>10}  {'HTTP list':>15}  {'HTTP get':>15}  {'port list':>15}  "
        f"{'port get':>15}",
    ]
    for size, entry in sorted(sizes.items(), key=lambda item: int(item[0])):
        cells = [
            f"{entry[key]['p50_ms']:.2f} / {entry[key]['p95_ms']:.2f}"
            for key in ("http_list", "http_get", "port_list", "port_get")
        ]
        lines.append(f"{int(size):>10,}  " + "  ".join(f"{c:>15}" for c in cells))
    r = report["ratios"]
    if r:
        lines.append("")
        for key in ("http_list", "http_get"):
            value = r.get(f"{key}_p50")
            verdict = "-" if value is None else ("ok" if value <= WITHIN else "MISSED")
            lines.append(f"{key}: largest / smallest p50 {value}x (within {WITHIN}x: {verdict})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smtp-port", type=int, default=26525)
    parser.add_argument("--http-port", type=int, default=28800)
    parser.add_argument("--kafka-port", type=int, default=29692)
    parser.add_argument("--controller-port", type=int, default=29693)
    parser.add_argument("--state-dir", type=Path, default=BENCH_DIR / "store-http")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=list(SIZES),
        help="message counts, comma-separated (default: 1000,10000,100000)",
    )
    parser.add_argument("--queries", type=int, default=QUERIES, help="timed reads per kind")
    parser.add_argument("--mailboxes", type=int, default=MAILBOXES)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = stamp()
    ports = Ports(args.smtp_port, args.http_port, args.kafka_port, args.controller_port)
    stack = BenchStack(args.state_dir, ports)
    info = machine()
    progress(f"{info['cpus']} CPUs, load average {info['load_before'][0]:.2f} before the run")
    with sigterm_as_interrupt():
        try:
            stack.wipe_data()
            stack.up()
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                report = runner.run(measure(stack, args.sizes, args.queries, args.mailboxes))
        except BenchError as exc:
            print(f"bench.store_http: {exc}", file=sys.stderr)
            if stack.started:
                print(stack.log_tails(), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench.store_http: interrupted", file=sys.stderr)
            return 130
        finally:
            stack.down()
            stack.wipe_data()
    record = {
        "bench": "store_http",
        "started_at": started_at,
        "git": git_state(),
        "machine": info,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **report,
    }
    print()
    print(table(report))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"store-http-{started_at}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
