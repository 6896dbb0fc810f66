"""The SQLite store's write path alone: CPU and wall time per mail, on one thread.

``.venv/bin/python -m bench.store_write [--batches 20] [--batch 500] [--profile]`` writes
real parses of :mod:`bench.parse`'s typical 5 KB mails (``bench.store_http``'s messages)
to 50 mailboxes of a new SQLite file in a temporary directory, one transaction per batch,
calling the adapter's batch function directly on this thread: no event loop, no thread
hop, no other thread to share the GIL with. So it is the floor of what the streams
worker's writer thread spends per mail. ``--profile`` prints cProfile's top functions
(the figures are then inflated by the profiler).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.store_http import GrowthMessages
from store._common import to_ms
from store.port import Mailbox
from store.sqlite import SQLiteStore, _store_batch

NOW = datetime(2026, 12, 2, tzinfo=UTC)
MAILBOXES = 50


async def measure(batches: int, batch: int, profile: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "write.sqlite3")
        await store.open()
        try:
            addresses = [f"box{n}@bench.example" for n in range(MAILBOXES)]
            for n, address in enumerate(addresses):
                await store.create_mailbox(
                    Mailbox(
                        id=f"mb{n}",
                        address=address,
                        token_hash=f"token{n}",
                        created_at=NOW - timedelta(hours=1),
                        expires_at=NOW + timedelta(days=15),
                        purge_after=NOW + timedelta(days=45),
                    ),
                    NOW,
                )
            make = GrowthMessages("write", addresses, NOW)
            messages = [tuple(make(b * batch + i) for i in range(batch)) for b in range(batches)]
            conn = store._connection()  # this thread's own connection
            profiler = cProfile.Profile() if profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            for part in messages:
                conn.execute("BEGIN IMMEDIATE")
                if profiler is not None:
                    profiler.enable()
                _store_batch(conn, batch=part, now_ms=to_ms(NOW))
                if profiler is not None:
                    profiler.disable()
                conn.execute("COMMIT")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            await store.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    mails = batches * batch
    return {
        "mails": mails,
        "stored": stored,
        "cpu_ms_per_mail": round(cpu * 1e3 / mails, 4),
        "wall_ms_per_mail": round(wall * 1e3 / mails, 4),
        "mails_per_s": round(mails / wall),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.batches, args.batch, args.profile))
    print(
        f"store_write: {result['stored']:,} of {result['mails']:,} typical 5 KB mails stored "
        f"in batches of {args.batch}: "
        f"{result['cpu_ms_per_mail']} ms CPU and {result['wall_ms_per_mail']} ms wall a mail "
        f"(COMMIT included), {result['mails_per_s']:,} mails/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
