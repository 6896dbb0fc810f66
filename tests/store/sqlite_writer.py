"""A second process for ``test_sqlite.py``: writes to a shared SQLite file like streams and api.

    python -m tests.store.sqlite_writer <db path> <shared address> <tag> <batches> <batch size>

Prints ``ready`` once the store is open, waits for a line on stdin (so that both writers
start together), then per batch: creates a mailbox of its own, stores ``batch size`` new
messages for the shared address, deletes the first of them. Prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from store import Mailbox, NewMessage
from store.sqlite import SQLiteStore


async def write(path: Path, address: str, tag: str, batches: int, size: int) -> dict[str, object]:
    store = SQLiteStore(path)
    await store.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    started = time.time()
    now = datetime.now(UTC)
    seqs: list[int] = []
    statuses: set[str] = set()
    for b in range(batches):
        mailbox = Mailbox(
            id=f"{tag}-{b}",
            address=f"{tag}-{b}@tmpmail.test",
            token_hash=f"{tag}-{b}",
            created_at=now,
            expires_at=now + timedelta(days=1),
            purge_after=now + timedelta(days=2),
        )
        statuses.add("created" if await store.create_mailbox(mailbox, now) else "held")
        batch = [
            NewMessage(
                id=f"{tag}-{b}-{i}",
                address=address,
                ingest_id=f"{tag}-{b}-{i}",
                received_at=now,
                expires_at=now + timedelta(days=1),
                raw=b"x" * 2048,
            )
            for i in range(size)
        ]
        results = await store.store_messages(batch, now)
        statuses |= {r.status for r in results}
        seqs += [r.seq for r in results if r.seq is not None]
        statuses.add("deleted" if await store.delete_message(address, batch[0].id) else "kept")
    finished = time.time()
    await store.close()
    return {"seqs": seqs, "statuses": sorted(statuses), "span": [started, finished]}


if __name__ == "__main__":
    db, shared, name, count, per_batch = sys.argv[1:6]
    summary = asyncio.run(write(Path(db), shared, name, int(count), int(per_batch)))
    print(json.dumps(summary), flush=True)
