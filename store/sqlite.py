"""SQLite adapter of the storage port: one file on one machine, written by several processes.

* **Threads.** Nothing touches SQLite on the event loop. Writes run on one dedicated
  writer thread with its own connection, each as one ``BEGIN IMMEDIATE`` transaction;
  reads run on a small pool of reader threads, one connection each (under WAL they never
  wait for a writer). ``read_threads=0`` sends reads to the writer thread instead.
* **Several processes.** WAL, ``synchronous=NORMAL`` and a busy timeout; a transaction
  that still finds the file locked is retried with bounded exponential backoff, then
  fails with :class:`~store.port.StoreError`.
* **Time.** Datetimes are integer epoch milliseconds in the file, aware UTC in Python.
* **Tables.** ``messages`` holds what lists read (the summary as one JSON column);
  ``message_chunks`` the raw bytes, ``message_documents`` the document's JSON and
  ``message_attachments`` the attachments, each in chunks keyed by message id (and
  parser version), carrying the message's expiry; ``tombstones``; ``dedupe_keys``, one
  row per (address, key) naming the copy that holds it; ``mailboxes``;
  ``lifecycle_outbox``, the lifecycle events not yet published, each written in the
  transaction of its change. A batch is one transaction, so a re-parse replaces a
  message's pieces at once.
* **Indexes.** Every statement is in :data:`QUERIES`; :meth:`SQLiteStore.query_plans`
  shows the plan SQLite picks for each, so ``bench/`` and the tests can check that none
  scans a whole table.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from schemas.mail import ParsedMail, summary_fields
from schemas.records import MailboxLifecycleEvent
from store._common import (
    attachment_chunks,
    document_chunks,
    from_ms,
    join_attachment,
    join_document,
    read_now,
    split_chunks,
    to_ms,
)
from store.port import (
    DELETE_BATCH,
    MAILBOX_PURGE_LIMIT,
    Mailbox,
    NewMessage,
    PendingLifecycleEvent,
    PurgeCounts,
    StoredMessage,
    StoreError,
    WriteResult,
)
from store.rules import (
    KeyHolder,
    MessageFacts,
    StoredCopy,
    address_is_free,
    decide_write,
    dedupe_key_expires_at,
    dedupe_key_moves,
    owner_of,
    take_over_seq,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]

#: Rows deleted per purge transaction, so a purge never holds the write lock for long.
PURGE_BATCH = 500
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 1.0

#: Schema version 1, as the first release created it. Frozen: a change is a new migration.
_SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS mailboxes (
        address     TEXT PRIMARY KEY,
        id          TEXT NOT NULL,
        token_hash  TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        purge_after INTEGER NOT NULL,
        last_seq    INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS mailboxes_by_purge_after ON mailboxes (purge_after)",
    """CREATE TABLE IF NOT EXISTS messages (
        id           TEXT PRIMARY KEY,
        address      TEXT NOT NULL,
        seq          INTEGER NOT NULL,
        ingest_id    TEXT NOT NULL,
        received_at  INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        size         INTEGER NOT NULL,
        sender       TEXT NOT NULL,
        subject      TEXT NOT NULL,
        preview      TEXT NOT NULL,
        parse_errors TEXT NOT NULL,
        seen         INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_by_address_seq ON messages (address, seq)",
    "CREATE INDEX IF NOT EXISTS messages_by_expires_at ON messages (expires_at)",
    """CREATE TABLE IF NOT EXISTS message_chunks (
        message_id TEXT NOT NULL,
        n          INTEGER NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (message_id, n)
    )""",
    """CREATE TABLE IF NOT EXISTS tombstones (
        id         TEXT PRIMARY KEY,
        address    TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS tombstones_by_expires_at ON tombstones (expires_at)",
)

#: Version 2: a message's summary is one JSON column (a new summary field needs no new
#: column), and raw chunks carry their message's expiry and are purged by it.
_SCHEMA_V2 = (
    "ALTER TABLE messages ADD COLUMN summary TEXT NOT NULL DEFAULT '{}'",
    "UPDATE messages SET summary = json_object('sender', sender, 'subject', subject,"
    " 'preview', preview, 'parse_errors', json(parse_errors))",
    "ALTER TABLE messages DROP COLUMN sender",
    "ALTER TABLE messages DROP COLUMN subject",
    "ALTER TABLE messages DROP COLUMN preview",
    "ALTER TABLE messages DROP COLUMN parse_errors",
    "ALTER TABLE message_chunks ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0",
    # A chunk without its message (none should exist) gets 0 and goes at the next purge.
    "UPDATE message_chunks SET expires_at = coalesce("
    "(SELECT expires_at FROM messages WHERE messages.id = message_chunks.message_id), 0)",
    "CREATE INDEX IF NOT EXISTS message_chunks_by_expires_at ON message_chunks (expires_at)",
)

#: Version 3: the whole parse. A message records its parser version; its document
#: (JSON) and attachments are chunked in tables of their own, keyed by parser version so
#: that a re-parse replaces them whole; dedupe keys have a table, one row per mailbox and
#: key, naming the copy that holds it.
_SCHEMA_V3 = (
    "ALTER TABLE messages ADD COLUMN parser_version INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS message_documents (
        message_id     TEXT NOT NULL,
        parser_version INTEGER NOT NULL,
        n              INTEGER NOT NULL,
        data           BLOB NOT NULL,
        expires_at     INTEGER NOT NULL,
        PRIMARY KEY (message_id, parser_version, n)
    )""",
    "CREATE INDEX IF NOT EXISTS message_documents_by_expires_at ON message_documents (expires_at)",
    """CREATE TABLE IF NOT EXISTS message_attachments (
        message_id     TEXT NOT NULL,
        parser_version INTEGER NOT NULL,
        attachment_id  TEXT NOT NULL,
        n              INTEGER NOT NULL,
        size           INTEGER NOT NULL,
        data           BLOB NOT NULL,
        expires_at     INTEGER NOT NULL,
        PRIMARY KEY (message_id, parser_version, attachment_id, n)
    )""",
    "CREATE INDEX IF NOT EXISTS message_attachments_by_expires_at"
    " ON message_attachments (expires_at)",
    """CREATE TABLE IF NOT EXISTS dedupe_keys (
        address     TEXT NOT NULL,
        dedupe_key  TEXT NOT NULL,
        message_id  TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        PRIMARY KEY (address, dedupe_key)
    )""",
    "CREATE INDEX IF NOT EXISTS dedupe_keys_by_expires_at ON dedupe_keys (expires_at)",
)

#: Version 4: the whole mailbox lifecycle. A record can be deleted (kept, flagged, until
#: ``purge_after``) and remembers its last visit; lifecycle events wait in an outbox,
#: written in the transaction of their change, until the broker has them.
_SCHEMA_V4 = (
    "ALTER TABLE mailboxes ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE mailboxes ADD COLUMN visited_at INTEGER",
    """CREATE TABLE IF NOT EXISTS lifecycle_outbox (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        address    TEXT NOT NULL,
        event      TEXT NOT NULL,
        written_at INTEGER NOT NULL
    )""",
)

#: ``MIGRATIONS[n - 1]`` takes a store from version ``n - 1`` to ``n``; a new store runs
#: them all, so a migrated store and a new one are the same.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4)
SCHEMA_VERSION = len(MIGRATIONS)

_MAILBOX_COLUMNS = (
    "address, id, token_hash, created_at, expires_at, purge_after, last_seq, deleted, visited_at"
)
_STORED_COLUMNS = (
    "id, address, seq, ingest_id, received_at, expires_at, size, seen, summary, parser_version"
)
_VISIBLE_BY_ID = "m.id = ? AND m.address = ? AND m.expires_at > ?"

#: The hot read paths, as the bench reports them.
HOT_QUERIES = (
    "newest_20",
    "keyset_page",
    "get_by_id",
    "after_seq",
    "mailbox_by_address",
    "mailbox_by_token",
)

#: Every statement the adapter runs, by name.
QUERIES: dict[str, str] = {
    # --- reads (a message is visible while ``expires_at > now``) -------------------------
    "newest_20": f"SELECT {_STORED_COLUMNS} FROM messages"
    " WHERE address = ? AND expires_at > ? ORDER BY seq DESC LIMIT ?",
    "keyset_page": f"SELECT {_STORED_COLUMNS} FROM messages"
    " WHERE address = ? AND seq < ? AND expires_at > ? ORDER BY seq DESC LIMIT ?",
    "after_seq": f"SELECT {_STORED_COLUMNS} FROM messages"
    " WHERE address = ? AND seq > ? AND expires_at > ? ORDER BY seq LIMIT ?",
    "get_by_id": f"SELECT {_STORED_COLUMNS} FROM messages"
    " WHERE id = ? AND address = ? AND expires_at > ?",
    "mailbox_by_address": f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE address = ?",
    "mailbox_by_token": f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE token_hash = ?",
    "message_size": "SELECT size FROM messages WHERE id = ? AND address = ? AND expires_at > ?",
    "raw_chunks": "SELECT data FROM message_chunks WHERE message_id = ? ORDER BY n",
    "document_chunks": "SELECT d.data FROM messages AS m JOIN message_documents AS d"
    " ON d.message_id = m.id AND d.parser_version = m.parser_version"
    f" WHERE {_VISIBLE_BY_ID} ORDER BY d.n",
    "attachment_chunks": "SELECT a.size, a.data FROM messages AS m JOIN message_attachments AS a"
    " ON a.message_id = m.id AND a.parser_version = m.parser_version"
    f" WHERE {_VISIBLE_BY_ID} AND a.attachment_id = ? ORDER BY a.n",
    # --- message writes ----------------------------------------------------------------
    "stored_by_id": "SELECT seq, expires_at, parser_version FROM messages WHERE id = ?",
    "tombstone_by_id": "SELECT 1 FROM tombstones WHERE id = ?",
    "mailbox_of": "SELECT created_at, id FROM mailboxes WHERE address = ?",
    "key_holder": "SELECT k.message_id, k.received_at, m.seq, m.expires_at, m.parser_version"
    " FROM dedupe_keys AS k LEFT JOIN messages AS m ON m.id = k.message_id"
    " WHERE k.address = ? AND k.dedupe_key = ?",
    "next_seq": "UPDATE mailboxes SET last_seq = last_seq + 1 WHERE address = ? RETURNING last_seq",
    "insert_message": f"INSERT INTO messages ({_STORED_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
    "insert_chunk": "INSERT INTO message_chunks (message_id, n, data, expires_at)"
    " VALUES (?, ?, ?, ?)",
    "insert_document_chunk": "INSERT OR REPLACE INTO message_documents"
    " (message_id, parser_version, n, data, expires_at) VALUES (?, ?, ?, ?, ?)",
    "insert_attachment_chunk": "INSERT OR REPLACE INTO message_attachments"
    " (message_id, parser_version, attachment_id, n, size, data, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "reparse_message": "UPDATE messages SET summary = ?, parser_version = ? WHERE id = ?",
    "delete_older_documents": "DELETE FROM message_documents"
    " WHERE message_id = ? AND parser_version < ?",
    "delete_older_attachments": "DELETE FROM message_attachments"
    " WHERE message_id = ? AND parser_version < ?",
    "hold_key": "INSERT INTO dedupe_keys (address, dedupe_key, message_id, received_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (address, dedupe_key) DO UPDATE SET"
    " message_id = excluded.message_id, received_at = excluded.received_at,"
    " expires_at = excluded.expires_at",
    "message_expiry": "SELECT expires_at FROM messages WHERE id = ? AND address = ?",
    "insert_tombstone": "INSERT OR REPLACE INTO tombstones (id, address, expires_at)"
    " VALUES (?, ?, ?)",
    "delete_message": "DELETE FROM messages WHERE id = ?",
    "ids_of_address": "SELECT id FROM messages WHERE address = ? LIMIT ?",
    "set_seen": "UPDATE messages SET seen = ? WHERE id = ? AND address = ? AND expires_at > ?",
    "delete_chunks_of_message": "DELETE FROM message_chunks WHERE message_id = ?",
    "delete_documents_of_message": "DELETE FROM message_documents WHERE message_id = ?",
    "delete_attachments_of_message": "DELETE FROM message_attachments WHERE message_id = ?",
    # --- mailbox writes ----------------------------------------------------------------
    "mailbox_hold": "SELECT purge_after, last_seq FROM mailboxes WHERE address = ?",
    "highest_seq_of_address": "SELECT max(seq) FROM messages WHERE address = ?",
    "insert_mailbox": f"INSERT INTO mailboxes ({_MAILBOX_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
    "replace_mailbox": "UPDATE mailboxes SET id = ?, token_hash = ?, created_at = ?,"
    " expires_at = ?, purge_after = ?, last_seq = ?, deleted = 0, visited_at = NULL"
    " WHERE address = ?",
    "touch_mailbox": "UPDATE mailboxes SET visited_at = ? WHERE address = ?",
    "extend_mailbox": "UPDATE mailboxes SET expires_at = ?, purge_after = ?"
    " WHERE address = ? AND expires_at = ? AND deleted = 0",
    "mark_mailbox_deleted": "UPDATE mailboxes SET deleted = 1,"
    " expires_at = min(expires_at, ?), purge_after = ? WHERE address = ? AND deleted = 0",
    "count_messages": "SELECT count(*) FROM messages WHERE address = ? AND expires_at > ?",
    # --- lifecycle outbox --------------------------------------------------------------
    "outbox_insert": "INSERT INTO lifecycle_outbox (address, event, written_at) VALUES (?, ?, ?)",
    "outbox_pending": "SELECT seq, event FROM lifecycle_outbox WHERE seq > ? ORDER BY seq LIMIT ?",
    "outbox_remove": "DELETE FROM lifecycle_outbox WHERE seq = ?",
    "delete_chunks_received_before": "DELETE FROM message_chunks WHERE message_id IN"
    " (SELECT id FROM messages WHERE address = ? AND received_at < ?)",
    "delete_documents_received_before": "DELETE FROM message_documents WHERE message_id IN"
    " (SELECT id FROM messages WHERE address = ? AND received_at < ?)",
    "delete_attachments_received_before": "DELETE FROM message_attachments WHERE message_id IN"
    " (SELECT id FROM messages WHERE address = ? AND received_at < ?)",
    "delete_keys_received_before": "DELETE FROM dedupe_keys WHERE address = ? AND received_at < ?",
    "delete_messages_received_before": "DELETE FROM messages WHERE address = ? AND received_at < ?",
    # --- purge -------------------------------------------------------------------------
    "purge_messages": "DELETE FROM messages"
    " WHERE id IN (SELECT id FROM messages WHERE expires_at <= ? LIMIT ?)",
    "purge_chunks": "DELETE FROM message_chunks"
    " WHERE rowid IN (SELECT rowid FROM message_chunks WHERE expires_at <= ? LIMIT ?)",
    "purge_documents": "DELETE FROM message_documents"
    " WHERE rowid IN (SELECT rowid FROM message_documents WHERE expires_at <= ? LIMIT ?)",
    "purge_attachments": "DELETE FROM message_attachments"
    " WHERE rowid IN (SELECT rowid FROM message_attachments WHERE expires_at <= ? LIMIT ?)",
    "purge_tombstones": "DELETE FROM tombstones"
    " WHERE id IN (SELECT id FROM tombstones WHERE expires_at <= ? LIMIT ?)",
    "purge_keys": "DELETE FROM dedupe_keys"
    " WHERE rowid IN (SELECT rowid FROM dedupe_keys WHERE expires_at <= ? LIMIT ?)",
    "purge_mailboxes": "DELETE FROM mailboxes"
    " WHERE address IN (SELECT address FROM mailboxes WHERE purge_after <= ? LIMIT ?)"
    " RETURNING address",
}


@dataclass(slots=True)
class QueryPlan:
    """One named query and the plan SQLite chose for it (for ``bench/`` and the tests)."""

    name: str
    sql: str
    plan: list[str] = field(default_factory=list)


class SQLiteStore:
    """The storage port on one SQLite file (see the module docstring for the threading)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 10.0,
        read_threads: int = 2,
        write_attempts: int = 5,
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._read_threads = read_threads
        self._write_attempts = max(1, write_attempts)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        if self._writer is not None:
            return
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._readers = self._writer
        if self._read_threads > 0:
            self._readers = ThreadPoolExecutor(self._read_threads, "sqlite-reader")
        try:
            await self._write(_migrate)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        if writer is not None and readers is not None:
            await asyncio.to_thread(self._shut_down, writer, readers)

    async def ping(self) -> None:
        """Read the schema cookie: fails on a missing directory or a file that is not SQLite."""
        await self._read(lambda conn: conn.execute("PRAGMA schema_version").fetchall())

    # --- mailboxes ------------------------------------------------------------------------
    async def create_mailbox(
        self, mailbox: Mailbox, now: datetime, *, event: MailboxLifecycleEvent | None = None
    ) -> bool:
        """Insert ``mailbox``, or take over a record past its ``purge_after``, in one
        transaction (the port's take-over rule), with ``event`` in the outbox."""
        return await self._write(
            functools.partial(_create_mailbox, mailbox=mailbox, now_ms=to_ms(now), event=event)
        )

    async def get_mailbox(self, address: str) -> Mailbox | None:
        row = await self._read(_fetch_one(QUERIES["mailbox_by_address"], (address,)))
        return None if row is None else _mailbox(row)

    async def get_mailbox_by_token(self, token_hash: str) -> Mailbox | None:
        row = await self._read(_fetch_one(QUERIES["mailbox_by_token"], (token_hash,)))
        return None if row is None else _mailbox(row)

    async def touch_mailbox(self, address: str, visited_at: datetime) -> None:
        await self._write(_execute(QUERIES["touch_mailbox"], (to_ms(visited_at), address)))

    async def extend_mailbox(
        self,
        address: str,
        *,
        expires_at_was: datetime,
        expires_at: datetime,
        purge_after: datetime,
        event: MailboxLifecycleEvent,
    ) -> bool:
        params = (to_ms(expires_at), to_ms(purge_after), address, to_ms(expires_at_was))
        work = functools.partial(
            _change_mailbox, sql=QUERIES["extend_mailbox"], params=params, event=event
        )
        return await self._write(work)

    async def mark_mailbox_deleted(
        self, address: str, *, now: datetime, purge_after: datetime, event: MailboxLifecycleEvent
    ) -> bool:
        params = (to_ms(now), to_ms(purge_after), address)
        work = functools.partial(
            _change_mailbox, sql=QUERIES["mark_mailbox_deleted"], params=params, event=event
        )
        return await self._write(work)

    async def count_messages(self, address: str, *, now: datetime | None = None) -> int:
        params = (address, to_ms(read_now(now)))
        row = await self._read(_fetch_one(QUERIES["count_messages"], params))
        return int(row[0])

    # --- lifecycle outbox -------------------------------------------------------------------
    async def pending_lifecycle_events(self, limit: int) -> list[PendingLifecycleEvent]:
        if limit <= 0:
            return []
        rows = await self._read(_fetch_all(QUERIES["outbox_pending"], (0, limit)))
        return [
            PendingLifecycleEvent(str(seq), MailboxLifecycleEvent.model_validate_json(event))
            for seq, event in rows
        ]

    async def remove_lifecycle_event(self, event_id: str) -> None:
        await self._write(_execute(QUERIES["outbox_remove"], (int(event_id),)))

    # --- messages -------------------------------------------------------------------------
    async def store_messages(self, batch: Sequence[NewMessage], now: datetime) -> list[WriteResult]:
        if not batch:
            return []
        work = functools.partial(_store_batch, batch=tuple(batch), now_ms=to_ms(now))
        return await self._write(work)

    async def list_messages(
        self,
        address: str,
        *,
        limit: int,
        before_seq: int | None = None,
        now: datetime | None = None,
    ) -> list[StoredMessage]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        now_ms = to_ms(read_now(now))
        if before_seq is None:
            fetch = _fetch_all(QUERIES["newest_20"], (address, now_ms, limit))
        else:
            fetch = _fetch_all(QUERIES["keyset_page"], (address, before_seq, now_ms, limit))
        return [_stored(row) for row in await self._read(fetch)]

    async def list_messages_after(
        self, address: str, after_seq: int, *, limit: int, now: datetime | None = None
    ) -> list[StoredMessage]:
        if limit <= 0:
            return []
        params = (address, after_seq, to_ms(read_now(now)), limit)
        return [_stored(row) for row in await self._read(_fetch_all(QUERIES["after_seq"], params))]

    async def get_message(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> StoredMessage | None:
        params = (message_id, address, to_ms(read_now(now)))
        row = await self._read(_fetch_one(QUERIES["get_by_id"], params))
        return None if row is None else _stored(row)

    async def get_raw(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> bytes | None:
        return await self._read(
            functools.partial(
                _read_raw, address=address, message_id=message_id, now_ms=to_ms(read_now(now))
            )
        )

    async def get_document(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> ParsedMail | None:
        params = (message_id, address, to_ms(read_now(now)))
        rows = await self._read(_fetch_all(QUERIES["document_chunks"], params))
        return join_document([chunk for (chunk,) in rows], message_id)

    async def get_attachment(
        self, address: str, message_id: str, attachment_id: str, *, now: datetime | None = None
    ) -> bytes | None:
        params = (message_id, address, to_ms(read_now(now)), attachment_id)
        rows = await self._read(_fetch_all(QUERIES["attachment_chunks"], params))
        return join_attachment([(size, chunk) for size, chunk in rows], message_id)

    async def delete_message(self, address: str, message_id: str) -> bool:
        work = functools.partial(_delete_message, address=address, message_id=message_id)
        return await self._write(work)

    async def delete_messages(self, address: str) -> int:
        """One transaction per :data:`DELETE_BATCH` messages, so writers interleave."""
        total = 0
        while True:
            deleted = await self._write(functools.partial(_delete_some, address=address))
            total += deleted
            if deleted < DELETE_BATCH:
                return total

    async def set_seen(
        self, address: str, message_id: str, seen: bool, *, now: datetime | None = None
    ) -> bool:
        params = (int(seen), message_id, address, to_ms(read_now(now)))
        work = functools.partial(_execute_changed, sql=QUERIES["set_seen"], params=params)
        return await self._write(work)

    async def purge_expired(
        self, now: datetime, *, mailbox_limit: int = MAILBOX_PURGE_LIMIT
    ) -> PurgeCounts:
        """Purge in transactions of at most :data:`PURGE_BATCH` rows, so writers interleave."""
        now_ms = to_ms(now)

        async def purge(name: str) -> int:
            total = 0
            while True:
                work = functools.partial(_delete_limited, sql=QUERIES[name], now_ms=now_ms)
                deleted = await self._write(work)
                total += deleted
                if deleted < PURGE_BATCH:
                    return total

        counts = {
            "messages": await purge("purge_messages"),
            "chunks": await purge("purge_chunks"),
            "document_chunks": await purge("purge_documents"),
            "attachment_chunks": await purge("purge_attachments"),
            "tombstones": await purge("purge_tombstones"),
            "dedupe_keys": await purge("purge_keys"),
        }
        addresses: list[str] = []
        while len(addresses) < mailbox_limit:
            limit = min(PURGE_BATCH, mailbox_limit - len(addresses))
            work = functools.partial(_purge_mailboxes, now_ms=now_ms, limit=limit)
            removed = await self._write(work)
            addresses += removed
            if len(removed) < limit:
                break
        return PurgeCounts(**counts, mailboxes=len(addresses), addresses=tuple(addresses))

    # --- diagnostics (not part of the port) ---------------------------------------------
    async def query_plans(self, names: Iterable[str] | None = None) -> list[QueryPlan]:
        """``EXPLAIN QUERY PLAN`` of the named statements (all of :data:`QUERIES` by default)."""
        wanted = list(QUERIES if names is None else names)
        return await self._read(functools.partial(_explain, names=wanted))

    # --- threads and transactions --------------------------------------------------------
    async def _write(self, work: Work[T]) -> T:
        return await self._call(self._writer, functools.partial(self._in_write_transaction, work))

    async def _read(self, work: Work[T]) -> T:
        return await self._call(self._readers, lambda: work(self._connection()))

    async def _call(self, executor: ThreadPoolExecutor | None, call: Callable[[], T]) -> T:
        if executor is None:
            raise StoreError(f"SQLite store {self.path} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from exc

    def _in_write_transaction(self, work: Work[T]) -> T:
        """Run ``work`` in ``BEGIN IMMEDIATE``; retry the whole of it while the file is locked."""
        conn = self._connection()
        delay = _FIRST_BACKOFF_S
        attempt = 1
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt >= self._write_attempts:
                    raise
                log.info(
                    "SQLite %s is locked (try %d): retrying in %.2fs", self.path, attempt, delay
                )
                time.sleep(delay)  # backoff on the writer thread; the loop is not blocked
                delay = min(delay * 2, _MAX_BACKOFF_S)
                attempt += 1

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # explicit BEGIN/COMMIT only
                check_same_thread=False,  # so close() can close it from another thread
            )
            self._enter_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, retried like a write: connections switching an old
        (rollback-journal) file at once deadlock, and SQLite answers one of them "locked"
        at once, without waiting the busy timeout."""
        delay = _FIRST_BACKOFF_S
        for attempt in range(1, self._write_attempts + 1):
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt >= self._write_attempts:
                    conn.close()
                    raise
                time.sleep(delay)  # on a store thread; the loop is not blocked
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def _shut_down(self, writer: ThreadPoolExecutor, readers: ThreadPoolExecutor) -> None:
        writer.shutdown(wait=True)
        readers.shutdown(wait=True)
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()


# --- work done on the threads ----------------------------------------------------------------
def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` (inside ``BEGIN IMMEDIATE``, which is
    the lock: a second process opening the store waits, then finds it migrated)."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store's schema is version {version}, newer than this code's "
            f"{SCHEMA_VERSION}: run the tmpmail release that wrote it, or a newer one"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[target - 1]:
            conn.execute(statement)
        log.info("SQLite store migrated to schema version %d", target)
    if version != SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return SCHEMA_VERSION


def _fetch_one(sql: str, params: tuple[Any, ...]) -> Work[Any]:
    return lambda conn: conn.execute(sql, params).fetchone()


def _fetch_all(sql: str, params: tuple[Any, ...]) -> Work[list[Any]]:
    return lambda conn: conn.execute(sql, params).fetchall()


def _execute(sql: str, params: tuple[Any, ...]) -> Work[None]:
    def work(conn: sqlite3.Connection) -> None:
        conn.execute(sql, params)

    return work


def _hold_event(conn: sqlite3.Connection, event: MailboxLifecycleEvent) -> None:
    conn.execute(
        QUERIES["outbox_insert"], (event.address, event.model_dump_json(), to_ms(event.at))
    )


def _change_mailbox(
    conn: sqlite3.Connection, *, sql: str, params: tuple[Any, ...], event: MailboxLifecycleEvent
) -> bool:
    """One conditional update of a mailbox record and, if it applied, its event."""
    if conn.execute(sql, params).rowcount != 1:
        return False
    _hold_event(conn, event)
    return True


def _create_mailbox(
    conn: sqlite3.Connection,
    *,
    mailbox: Mailbox,
    now_ms: int,
    event: MailboxLifecycleEvent | None = None,
) -> bool:
    address = mailbox.address
    created_ms = to_ms(mailbox.created_at)
    times = (created_ms, to_ms(mailbox.expires_at), to_ms(mailbox.purge_after))
    held = conn.execute(QUERIES["mailbox_hold"], (address,)).fetchone()
    if not address_is_free(None if held is None else from_ms(held[0]), from_ms(now_ms)):
        return False
    highest = conn.execute(QUERIES["highest_seq_of_address"], (address,)).fetchone()[0]
    last_seq = take_over_seq(None if held is None else held[1], highest, mailbox.last_seq)
    try:
        if held is None:
            conn.execute(
                QUERIES["insert_mailbox"],
                (address, mailbox.id, mailbox.token_hash, *times, last_seq),
            )
        else:
            conn.execute(
                QUERIES["replace_mailbox"],
                (mailbox.id, mailbox.token_hash, *times, last_seq, address),
            )
    except sqlite3.IntegrityError:  # the token hash belongs to another mailbox
        return False
    for name in (
        "delete_chunks_received_before",
        "delete_documents_received_before",
        "delete_attachments_received_before",
        "delete_keys_received_before",
        "delete_messages_received_before",
    ):
        conn.execute(QUERIES[name], (address, created_ms))
    if event is not None:
        _hold_event(conn, event)
    return True


def _store_batch(
    conn: sqlite3.Connection, *, batch: tuple[NewMessage, ...], now_ms: int
) -> list[WriteResult]:
    """Each message decided and written in turn; the chunks of the batch (raw bytes,
    documents, attachments) go in last, with one statement per table. No decision reads
    a chunk, so deferring them to the end of the transaction changes nothing but the
    cost: a statement per message and table was a fifth of the write's CPU."""
    now = from_ms(now_ms)
    chunks = _Chunks()
    results = [_store_one(conn, message, now, chunks) for message in batch]
    chunks.insert(conn)
    return results


@dataclass(slots=True)
class _Chunks:
    """The chunk rows of a batch, written together (:func:`_store_batch`)."""

    raw: list[tuple[str, int, bytes, int]] = field(default_factory=list)
    documents: list[tuple[str, int, int, bytes, int]] = field(default_factory=list)
    attachments: list[tuple[str, int, str, int, int, bytes, int]] = field(default_factory=list)

    def add_raw(self, message: NewMessage, expires_ms: int) -> None:
        mid = message.id
        self.raw.extend(
            (mid, n, chunk, expires_ms) for n, chunk in enumerate(split_chunks(message.raw))
        )

    def add_parse(self, message: NewMessage, stored: StoredCopy) -> None:
        """The document and attachments of ``message``, under its parser version."""
        mid, version, expires_ms = message.id, stored.parser_version, to_ms(stored.expires_at)
        self.documents.extend(
            (mid, version, n, chunk, expires_ms) for n, chunk in enumerate(document_chunks(message))
        )
        self.attachments.extend(
            (mid, version, attachment_id, n, size, chunk, expires_ms)
            for attachment_id, n, size, chunk in attachment_chunks(message)
        )

    def insert(self, conn: sqlite3.Connection) -> None:
        for query, rows in (
            ("insert_chunk", self.raw),
            ("insert_document_chunk", self.documents),
            ("insert_attachment_chunk", self.attachments),
        ):
            if rows:
                conn.executemany(QUERIES[query], rows)


def _store_one(
    conn: sqlite3.Connection, message: NewMessage, now: datetime, chunks: _Chunks
) -> WriteResult:
    """Decide ``message`` with :func:`~store.rules.decide_write` and write the outcome
    (its chunks into ``chunks``)."""
    mid, address = message.id, message.address
    facts = _facts(conn, message)
    decision = decide_write(message, facts, now)
    owner = owner_of(message, facts)
    if decision.status == "inserted":
        seq: int = conn.execute(QUERIES["next_seq"], (address,)).fetchone()[0]
        stored = StoredCopy(seq, message.expires_at, message.parser_version)
        expires_ms = to_ms(message.expires_at)
        conn.execute(
            QUERIES["insert_message"],
            (
                mid,
                address,
                seq,
                message.ingest_id,
                to_ms(message.received_at),
                expires_ms,
                len(message.raw),
                json.dumps(summary_fields(message)),
                message.parser_version,
            ),
        )
        chunks.add_raw(message, expires_ms)
        chunks.add_parse(message, stored)
    elif decision.status == "updated" and facts.existing is not None:
        stored = StoredCopy(facts.existing.seq, facts.existing.expires_at, message.parser_version)
        chunks.add_parse(message, stored)
        conn.execute(
            QUERIES["reparse_message"],
            (json.dumps(summary_fields(message)), message.parser_version, mid),
        )
        conn.execute(QUERIES["delete_older_documents"], (mid, message.parser_version))
        conn.execute(QUERIES["delete_older_attachments"], (mid, message.parser_version))
    elif decision.status == "existing" and facts.existing is not None:
        stored = facts.existing
    else:
        return WriteResult(
            mid, address, decision.status, decision.seq, decision.duplicate_of, owner
        )
    if dedupe_key_moves(message, facts.key_holder):
        conn.execute(
            QUERIES["hold_key"],
            (
                address,
                message.dedupe_key,
                mid,
                to_ms(message.received_at),
                to_ms(dedupe_key_expires_at(stored.expires_at)),
            ),
        )
    return WriteResult(mid, address, decision.status, stored.seq, mailbox_id=owner)


def _facts(conn: sqlite3.Connection, message: NewMessage) -> MessageFacts:
    row = conn.execute(QUERIES["stored_by_id"], (message.id,)).fetchone()
    existing = None if row is None else StoredCopy(row[0], from_ms(row[1]), row[2])
    tombstoned = existing is None and bool(
        conn.execute(QUERIES["tombstone_by_id"], (message.id,)).fetchone()
    )
    mailbox = conn.execute(QUERIES["mailbox_of"], (message.address,)).fetchone()
    holder = None
    if message.dedupe_key:
        key = conn.execute(QUERIES["key_holder"], (message.address, message.dedupe_key)).fetchone()
        if key is not None:
            held_id, held_received, seq, expires, version = key
            held = None if seq is None else StoredCopy(seq, from_ms(expires), version)
            holder = KeyHolder(held_id, from_ms(held_received), held)
    return MessageFacts(
        existing=existing,
        tombstoned=tombstoned,
        mailbox_created_at=None if mailbox is None else from_ms(mailbox[0]),
        key_holder=holder,
        mailbox_id=None if mailbox is None else mailbox[1],
    )


def _read_raw(
    conn: sqlite3.Connection, *, address: str, message_id: str, now_ms: int
) -> bytes | None:
    conn.execute("BEGIN")  # one snapshot for the size and the chunks
    try:
        row = conn.execute(QUERIES["message_size"], (message_id, address, now_ms)).fetchone()
        if row is None:
            return None
        chunks = conn.execute(QUERIES["raw_chunks"], (message_id,)).fetchall()
    finally:
        conn.execute("COMMIT")
    raw = b"".join(chunk for (chunk,) in chunks)
    if len(raw) != row[0]:
        raise StoreError(f"raw bytes of message {message_id} are incomplete")
    return raw


def _delete_message(conn: sqlite3.Connection, *, address: str, message_id: str) -> bool:
    row = conn.execute(QUERIES["message_expiry"], (message_id, address)).fetchone()
    if row is None:
        return False
    conn.execute(QUERIES["insert_tombstone"], (message_id, address, row[0]))
    for name in (
        "delete_message",
        "delete_chunks_of_message",
        "delete_documents_of_message",
        "delete_attachments_of_message",
    ):
        conn.execute(QUERIES[name], (message_id,))
    return True


def _execute_changed(conn: sqlite3.Connection, *, sql: str, params: tuple[Any, ...]) -> bool:
    return conn.execute(sql, params).rowcount > 0


def _delete_some(conn: sqlite3.Connection, *, address: str) -> int:
    ids = conn.execute(QUERIES["ids_of_address"], (address, DELETE_BATCH)).fetchall()
    return sum(_delete_message(conn, address=address, message_id=mid) for (mid,) in ids)


def _delete_limited(conn: sqlite3.Connection, *, sql: str, now_ms: int) -> int:
    return conn.execute(sql, (now_ms, PURGE_BATCH)).rowcount


def _purge_mailboxes(conn: sqlite3.Connection, *, now_ms: int, limit: int) -> list[str]:
    rows = conn.execute(QUERIES["purge_mailboxes"], (now_ms, limit)).fetchall()
    return [address for (address,) in rows]


def _explain(conn: sqlite3.Connection, *, names: list[str]) -> list[QueryPlan]:
    plans = []
    for name in names:
        sql = QUERIES[name]
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", (0,) * sql.count("?")).fetchall()
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _unused, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + detail)
        plans.append(QueryPlan(name=name, sql=sql, plan=lines))
    return plans


# --- rows to port records ------------------------------------------------------------------------
def _mailbox(row: tuple[Any, ...]) -> Mailbox:
    address, mailbox_id, token_hash, created, expires, purge_after, last_seq, deleted, visited = row
    return Mailbox(
        id=mailbox_id,
        address=address,
        token_hash=token_hash,
        created_at=from_ms(created),
        expires_at=from_ms(expires),
        purge_after=from_ms(purge_after),
        last_seq=last_seq,
        deleted=bool(deleted),
        visited_at=None if visited is None else from_ms(visited),
    )


def _stored(row: tuple[Any, ...]) -> StoredMessage:
    mid, address, seq, ingest_id, received, expires, size, seen, summary, version = row
    return StoredMessage.model_validate(
        {
            **json.loads(summary),
            "id": mid,
            "address": address,
            "seq": seq,
            "ingest_id": ingest_id,
            "received_at": from_ms(received),
            "expires_at": from_ms(expires),
            "size": size,
            "seen": bool(seen),
            "parser_version": version,
        }
    )
