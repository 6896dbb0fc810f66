"""Read latency of the SQLite store as it grows from 1k to 10k to 100k messages.

Run it from the checkout (about a minute; the file, about 400 MB at 100k, is deleted):

    .venv/bin/python bench/store_latency.py
    .venv/bin/python bench/store_latency.py --read-threads 0   # reads on the writer thread

It goes through the store port only (plus ``SQLiteStore.query_plans``): messages with
bodies of a few KB, spread over 50 mailboxes, are written with ``store_messages`` in
batches of 500. At each size it times random "newest 20 of one mailbox" and "get by id"
calls end to end (event loop, thread hop, SQLite, row decoding), prints p50/p95 and the
plan SQLite chose, then the 100k/1k ratios. ``ping`` is timed too: it is nearly all
thread hop, the part of each figure that does not depend on the data and that jitters
most from run to run on a small VM. Last, the same reads while a writer keeps
storing batches, which is what the reader threads are for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store import Mailbox, NewMessage
from store.sqlite import SQLiteStore

SIZES = (1_000, 10_000, 100_000)
MAILBOXES = 50
BATCH = 500
BODY_BYTES = 3_000
WITHIN = 1.5
WARM_UP_S = 0.5
HOT = ("newest_20", "get_by_id")
NOW = datetime.now(UTC)

Query = Callable[[], Awaitable[object]]


def _address(n: int) -> str:
    return f"box{n:02d}@tmpmail.test"


def _message(n: int) -> NewMessage:
    address = _address(n % MAILBOXES)
    body = os.urandom(BODY_BYTES // 2).hex()
    raw = (
        f"From: sender{n}@example.test\r\nTo: {address}\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}@example.test>\r\n\r\n{body}\r\n"
    ).encode()
    return NewMessage(
        id=f"ingest-{n:07d}:{address}",
        address=address,
        ingest_id=f"ingest-{n:07d}",
        received_at=NOW,
        expires_at=NOW + timedelta(days=7),
        raw=raw,
        sender=f"sender{n}@example.test",
        subject=f"message {n}",
        preview=body[:200],
    )


async def fill(
    store: SQLiteStore, start: int, stop: int, make: Callable[[int], NewMessage] | None = None
) -> float:
    """Store messages ``start..stop`` (``make(n)``, by default this bench's); return
    messages per second."""
    make = make or _message
    began = time.perf_counter()
    for first in range(start, stop, BATCH):
        batch = [make(n) for n in range(first, min(first + BATCH, stop))]
        results = await store.store_messages(batch, NOW)
        assert all(r.status == "inserted" for r in results), "fill: a message was not inserted"
    return (stop - start) / (time.perf_counter() - began)


async def latencies(query: Query, count: int) -> list[float]:
    """Milliseconds of ``count`` sequential awaits of ``query()``."""
    warm_until = time.perf_counter() + WARM_UP_S  # threads, connections, caches, CPU clocks
    while time.perf_counter() < warm_until:
        await query()
    timings = []
    for _ in range(count):
        began = time.perf_counter_ns()
        await query()
        timings.append((time.perf_counter_ns() - began) / 1e6)
    return timings


def percentiles(timings: list[float]) -> tuple[float, float]:
    """p50 and p95 of ``timings``."""
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return cuts[49], cuts[94]


def _queries(store: SQLiteStore, size: int, rng: random.Random) -> dict[str, Query]:
    def newest_20() -> Awaitable[object]:
        return store.list_messages(_address(rng.randrange(MAILBOXES)), limit=20)

    def get_by_id() -> Awaitable[object]:
        n = rng.randrange(size)
        return store.get_message(_address(n % MAILBOXES), _message_id(n))

    return {"newest_20": newest_20, "get_by_id": get_by_id, "ping": store.ping}


def _message_id(n: int) -> str:
    return f"ingest-{n:07d}:{_address(n % MAILBOXES)}"


async def _keep_writing(store: SQLiteStore, start: int, stop: asyncio.Event) -> int:
    n = start
    while not stop.is_set():
        # Build the batch off the loop too, so that only the store competes with the reads.
        batch = await asyncio.to_thread(
            lambda first: [_message(i) for i in range(first, first + BATCH)], n
        )
        await store.store_messages(batch, NOW)
        n += BATCH
    return n - start


async def run(read_threads: int, queries: int) -> dict[str, Any]:
    """The whole bench; it prints as it goes and returns the figures (ms)."""
    labels = {
        "newest_20": "newest 20 of one mailbox",
        "get_by_id": "get by id",
        "ping": "ping (the thread hop)",
    }
    rng = random.Random(42)
    with tempfile.TemporaryDirectory(prefix="tmpmail-bench-") as tmp:
        store = SQLiteStore(Path(tmp) / "bench.sqlite3", read_threads=read_threads)
        await store.open()
        print(
            f"store_latency: SQLite, {MAILBOXES} mailboxes, ~{BODY_BYTES // 1000} KB bodies, "
            f"batches of {BATCH}, {queries} random queries each, read threads: {read_threads}"
        )
        for mailbox in range(MAILBOXES):
            await store.create_mailbox(
                Mailbox(
                    id=f"mb{mailbox}",
                    address=_address(mailbox),
                    token_hash=f"token{mailbox}",
                    created_at=NOW,
                    expires_at=NOW + timedelta(days=15),
                    purge_after=NOW + timedelta(days=45),
                ),
                NOW,
            )

        results: dict[int, dict[str, tuple[float, float]]] = {}
        filled = 0
        for size in SIZES:
            rate = await fill(store, filled, size)
            filled = size
            # The fill leaves up to hundreds of MB of dirty pages (synchronous=NORMAL does
            # not fsync): flush them now rather than time reads against kernel writeback.
            await asyncio.to_thread(os.sync)
            megabytes = store.path.stat().st_size / 1e6
            print(f"\n== {size:,} messages (filled at {rate:,.0f} msg/s; file {megabytes:,.0f} MB)")
            plans = {p.name: p.plan for p in await store.query_plans(HOT)}
            results[size] = {}
            for name, query in _queries(store, size, rng).items():
                p50, p95 = percentiles(await latencies(query, queries))
                results[size][name] = (p50, p95)
                print(f"  {labels[name]:<26} p50 {p50:6.3f} ms   p95 {p95:6.3f} ms")
                for line in plans.get(name, []):
                    print(f"      plan: {line}")

        small, large = SIZES[0], SIZES[-1]
        print(f"\n== ratio {large // 1000}k / {small // 1000}k (within {WITHIN}x?)")
        ratios_by_name = {}
        for name, label in labels.items():
            ratios = [results[large][name][i] / results[small][name][i] for i in (0, 1)]
            ratios_by_name[name] = {"p50": round(ratios[0], 3), "p95": round(ratios[1], 3)}
            verdicts = ["yes" if r <= WITHIN else "NO" for r in ratios]
            print(
                f"  {label:<26} p50 {ratios[0]:.2f}x ({verdicts[0]})   "
                f"p95 {ratios[1]:.2f}x ({verdicts[1]})"
            )

        stop = asyncio.Event()
        writer = asyncio.create_task(_keep_writing(store, filled, stop))
        print(f"\n== {large:,}+ messages, while a writer stores batches of {BATCH}")
        busy = {}
        for name, query in _queries(store, large, rng).items():
            p50, p95 = percentiles(await latencies(query, queries))
            busy[name] = {"p50_ms": round(p50, 4), "p95_ms": round(p95, 4)}
            print(f"  {labels[name]:<26} p50 {p50:6.3f} ms   p95 {p95:6.3f} ms")
        stop.set()
        written = await writer
        print(f"  (the writer stored {written:,} messages meanwhile)")
        await store.close()
    return {
        "sizes": {
            str(size): {
                name: {"p50_ms": round(p50, 4), "p95_ms": round(p95, 4)}
                for name, (p50, p95) in by_name.items()
            }
            for size, by_name in results.items()
        },
        "ratios": ratios_by_name,
        "within": WITHIN,
        "while_writing": busy,
        "written_meanwhile": written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read-threads", type=int, default=2, help="SQLiteStore reader threads")
    parser.add_argument("--queries", type=int, default=2000, help="timed queries per kind")
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(run(args.read_threads, args.queries))
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
