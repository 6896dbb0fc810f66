"""A SQLite store written by version 3 (the whole parse) opens under this code and
migrates to version 4 (deleted flag, visits, the lifecycle outbox)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from schemas.records import MailboxLifecycleEvent
from store._common import to_ms
from store.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.store.store_support import ADDR, NOW
from tests.store.test_migrations import MAILBOX, V1_SQLITE_SCHEMA, V2_SQLITE_MIGRATION

#: The version-3 migration, verbatim.
V3_SQLITE_MIGRATION = (
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
#: Version 3's write of a mailbox and of a message, verbatim.
V3_INSERT_MAILBOX = (
    "INSERT INTO mailboxes (address, id, token_hash, created_at, expires_at, purge_after,"
    " last_seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
V3_INSERT_MESSAGE = (
    "INSERT INTO messages (id, address, seq, ingest_id, received_at, expires_at, size, seen,"
    " summary, parser_version) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
)


def write_v3_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (*V1_SQLITE_SCHEMA, *V2_SQLITE_MIGRATION, *V3_SQLITE_MIGRATION):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        V3_INSERT_MAILBOX,
        (
            MAILBOX.address,
            MAILBOX.id,
            MAILBOX.token_hash,
            to_ms(MAILBOX.created_at),
            to_ms(MAILBOX.expires_at),
            to_ms(MAILBOX.purge_after),
            1,
        ),
    )
    conn.execute(
        V3_INSERT_MESSAGE,
        ("msg1", ADDR, 1, "ingest1", to_ms(NOW), to_ms(MAILBOX.expires_at), 3, "{}", 1),
    )
    conn.close()


async def test_a_version_3_store_migrates_to_version_4(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    write_v3_sqlite(path)
    store = SQLiteStore(path)
    await store.open()
    try:
        assert SCHEMA_VERSION == 4
        mailbox = await store.get_mailbox_by_token(MAILBOX.token_hash)
        assert mailbox is not None
        assert (mailbox.deleted, mailbox.visited_at, mailbox.last_seq) == (False, None, 1)
        assert await store.count_messages(ADDR, now=NOW) == 1
        event = MailboxLifecycleEvent(
            kind="deleted",
            address=ADDR,
            mailbox_id=MAILBOX.id,
            created_at=MAILBOX.created_at,
            expires_at=NOW,
        )
        assert await store.mark_mailbox_deleted(
            ADDR, now=NOW, purge_after=MAILBOX.purge_after, event=event
        )
        assert [p.event for p in await store.pending_lifecycle_events(5)] == [event]
    finally:
        await store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == 4
