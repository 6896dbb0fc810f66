"""SQLite only: several processes on one file, lock retries, WAL, and an index for every query."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store import StoreError
from store.sqlite import HOT_QUERIES, QUERIES, SQLiteStore
from tests.store.store_support import ADDR, NOW, MailboxFactory, MessageFactory, store_many

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "store.sqlite3")
    await store.open()
    yield store
    await store.close()


async def test_two_processes_write_the_same_file(
    sqlite_store: SQLiteStore, make_mailbox: MailboxFactory
) -> None:
    batches, size = 200, 20
    await sqlite_store.create_mailbox(make_mailbox(ADDR), NOW)
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.store.sqlite_writer",
            str(sqlite_store.path),
            ADDR,
            tag,
            str(batches),
            str(size),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for tag in ("writer-a", "writer-b")
    ]
    for writer in writers:  # both open, then both go at once
        assert writer.stdout is not None
        assert await asyncio.wait_for(writer.stdout.readline(), 30) == b"ready\n"
    outputs = await asyncio.wait_for(
        asyncio.gather(*(writer.communicate(b"go\n") for writer in writers)), 120
    )

    summaries = [json.loads(stdout) for stdout, _ in outputs]
    assert [writer.returncode for writer in writers] == [0, 0]
    starts, ends = zip(*(summary["span"] for summary in summaries), strict=True)
    assert max(starts) < min(ends), "the two writers did not overlap"
    for summary in summaries:
        assert summary["statuses"] == ["created", "deleted", "inserted"]
    total = 2 * batches * size
    assert sorted(summaries[0]["seqs"] + summaries[1]["seqs"]) == list(range(1, total + 1))
    mailbox = await sqlite_store.get_mailbox(ADDR)
    assert mailbox is not None and mailbox.last_seq == total
    listed = await sqlite_store.list_messages(ADDR, limit=total)
    assert len(listed) == total - 2 * batches


class _SetOnRecord(logging.Handler):
    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


async def test_a_locked_file_is_retried_then_given_up(
    tmp_path: Path, make_mailbox: MailboxFactory
) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = SQLiteStore(path)
    patient = SQLiteStore(path, busy_timeout_s=0.01, write_attempts=50)
    impatient = SQLiteStore(path, busy_timeout_s=0.01, write_attempts=2)
    for store in (holder, patient, impatient):
        await store.open()

    held, release = threading.Event(), threading.Event()

    def hold_the_write_lock(_conn: object) -> None:
        held.set()
        release.wait(30)

    retried = threading.Event()
    logger = logging.getLogger("store.sqlite")
    handler, level = _SetOnRecord(retried), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        holding = asyncio.create_task(holder._write(hold_the_write_lock))
        await asyncio.to_thread(held.wait, 30)
        with pytest.raises(StoreError, match="locked"):
            await impatient.create_mailbox(make_mailbox("x@tmpmail.test"), NOW)
        retried.clear()
        creating = asyncio.create_task(patient.create_mailbox(make_mailbox(ADDR), NOW))
        assert await asyncio.to_thread(retried.wait, 30)  # it found the lock and backs off
        release.set()
        assert await creating
        await holding
    finally:
        release.set()
        logger.removeHandler(handler)
        logger.setLevel(level)
        for store in (holder, patient, impatient):
            await store.close()
    check = SQLiteStore(path)
    await check.open()
    assert await check.get_mailbox(ADDR) is not None
    assert await check.get_mailbox("x@tmpmail.test") is None
    await check.close()


async def test_the_file_is_in_wal_mode(
    sqlite_store: SQLiteStore, make_mailbox: MailboxFactory
) -> None:
    await sqlite_store.create_mailbox(make_mailbox(ADDR), NOW)
    assert sqlite_store.path.with_name(sqlite_store.path.name + "-wal").exists()


async def test_every_query_uses_an_index(
    sqlite_store: SQLiteStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await sqlite_store.create_mailbox(make_mailbox(ADDR), NOW)
    await store_many(sqlite_store, make_message, ADDR, 30, batch_size=10)

    plans = await sqlite_store.query_plans()
    assert [plan.name for plan in plans] == list(QUERIES)
    for plan in plans:
        for line in plan.plan:
            assert not line.lstrip().startswith("SCAN"), f"{plan.name}: {line}"
            assert "TEMP B-TREE" not in line, f"{plan.name}: {line}"

    hot = {plan.name: plan.plan for plan in await sqlite_store.query_plans(HOT_QUERIES)}
    for name in ("newest_20", "keyset_page", "after_seq"):
        assert len(hot[name]) == 1, hot[name]
        assert "USING INDEX messages_by_address_seq" in hot[name][0]
    assert "USING INDEX" in hot["get_by_id"][0] and "(id=?)" in hot["get_by_id"][0]
    assert "(address=?)" in hot["mailbox_by_address"][0]
    assert "(token_hash=?)" in hot["mailbox_by_token"][0]
