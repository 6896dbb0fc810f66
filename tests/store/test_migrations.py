"""Stores written by earlier releases open and migrate under this code.

The old stores here are written the way those releases wrote them, with their own
statements and documents copied below, not with today's code: SQLite at version 1 (the
first release) and 2 (the summary as JSON, chunks with expiry); MongoDB at version 1.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from store import Mailbox, MailStore, NewMessage
from store._common import to_ms, utc_ms
from store.mongodb import LEASE_S, MongoStore
from store.mongodb import SCHEMA_VERSION as MONGO_SCHEMA_VERSION
from store.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.store.store_support import ADDR, NOW, parse_of

DAY = timedelta(days=1)

#: The first release's SQLite schema, verbatim.
V1_SQLITE_SCHEMA = (
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

#: The version-2 migration, verbatim (a store at version 2 ran version 1 and then this).
V2_SQLITE_MIGRATION = (
    "ALTER TABLE messages ADD COLUMN summary TEXT NOT NULL DEFAULT '{}'",
    "UPDATE messages SET summary = json_object('sender', sender, 'subject', subject,"
    " 'preview', preview, 'parse_errors', json(parse_errors))",
    "ALTER TABLE messages DROP COLUMN sender",
    "ALTER TABLE messages DROP COLUMN subject",
    "ALTER TABLE messages DROP COLUMN preview",
    "ALTER TABLE messages DROP COLUMN parse_errors",
    "ALTER TABLE message_chunks ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0",
    "UPDATE message_chunks SET expires_at = coalesce("
    "(SELECT expires_at FROM messages WHERE messages.id = message_chunks.message_id), 0)",
    "CREATE INDEX IF NOT EXISTS message_chunks_by_expires_at ON message_chunks (expires_at)",
)
#: Version 2's writes of a mailbox, a message and a chunk, verbatim.
V2_INSERT_MAILBOX = (
    "INSERT INTO mailboxes (address, id, token_hash, created_at, expires_at, purge_after,"
    " last_seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
V2_INSERT_MESSAGE = (
    "INSERT INTO messages (id, address, seq, ingest_id, received_at, expires_at, size, seen,"
    " summary) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)"
)
V2_INSERT_CHUNK = "INSERT INTO message_chunks (message_id, n, data, expires_at) VALUES (?, ?, ?, ?)"

RAW = b"From: a@example.test\r\nSubject: old\r\n\r\nwritten at version 1\r\n"
MAILBOX = Mailbox(
    id="m1",
    address=ADDR,
    token_hash="t" * 64,
    created_at=NOW - DAY,
    expires_at=NOW + 14 * DAY,
    purge_after=NOW + 44 * DAY,
    last_seq=1,
)


def write_v1_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in V1_SQLITE_SCHEMA:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO mailboxes VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        (
            "msg1",
            ADDR,
            1,
            "ingest1",
            to_ms(NOW - DAY),
            to_ms(NOW + DAY),
            len(RAW),
            "Zoë <a@example.test>",
            "old",
            "written at version 1",
            json.dumps(["message: MissingHeaderBodySeparatorDefect"]),
        ),
    )
    conn.execute("INSERT INTO message_chunks VALUES (?, 0, ?)", ("msg1", RAW))
    conn.close()


def write_v2_sqlite(path: Path) -> None:
    """A store as version 2 wrote it: version 1's schema, migrated, then written to."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in (*V1_SQLITE_SCHEMA, *V2_SQLITE_MIGRATION):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        V2_INSERT_MAILBOX,
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
    summary = {
        "sender": "Zoë <a@example.test>",
        "subject": "old",
        "preview": "written at version 1",
        "message_id_header": "",
        "parse_errors": ["message: MissingHeaderBodySeparatorDefect"],
    }
    conn.execute(
        V2_INSERT_MESSAGE,
        (
            "msg1",
            ADDR,
            1,
            "ingest1",
            to_ms(NOW - DAY),
            to_ms(NOW + DAY),
            len(RAW),
            json.dumps(summary),
        ),
    )
    conn.execute(V2_INSERT_CHUNK, ("msg1", 0, RAW, to_ms(NOW + DAY)))
    conn.close()


async def check_reparse_of_old_mail(store: MailStore) -> None:
    """Old mail has parser version 0 and no document; a newer parse updates it."""
    old = await store.get_message(ADDR, "msg1")
    assert old is not None and old.parser_version == 0
    assert await store.get_document(ADDR, "msg1") is None
    reparse = NewMessage(
        id="msg1",
        address=ADDR,
        ingest_id="ingest1",
        received_at=NOW - DAY,
        expires_at=NOW + DAY,
        raw=RAW,
        dedupe_key="k1",
        **parse_of("reparsed", {"a1": b"attached"}),  # type: ignore[arg-type]
    )
    [result] = await store.store_messages([reparse], NOW)
    assert (result.status, result.seq) == ("updated", 1)
    assert await store.get_document(ADDR, "msg1") == reparse.document
    assert await store.get_attachment(ADDR, "msg1", "a1") == b"attached"
    assert await store.get_raw(ADDR, "msg1") == RAW
    retry = reparse.model_copy(update={"id": "msg2", "received_at": NOW})
    [duplicate] = await store.store_messages([retry], NOW)
    assert (duplicate.status, duplicate.seq, duplicate.duplicate_of) == ("duplicate", 1, "msg1")


async def check_v1_content(store: SQLiteStore | MongoStore) -> None:
    """What version 1 stored reads back whole, and follows today's rules."""
    assert await store.get_mailbox(ADDR) == MAILBOX
    message = await store.get_message(ADDR, "msg1")
    assert message is not None
    assert (message.sender, message.subject, message.preview, message.seq) == (
        "Zoë <a@example.test>",
        "old",
        "written at version 1",
        1,
    )
    assert message.parse_errors == ("message: MissingHeaderBodySeparatorDefect",)
    assert await store.get_raw(ADDR, "msg1") == RAW
    counts = await store.purge_expired(NOW + DAY)
    assert (counts.messages, counts.chunks) == (1, 1)
    assert await store.get_raw(ADDR, "msg1") is None


# --- SQLite ----------------------------------------------------------------------------------
async def test_a_version_1_sqlite_store_opens_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    write_v1_sqlite(path)
    store = SQLiteStore(path)
    await store.open()
    try:
        await check_v1_content(store)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    assert {"summary", "parser_version"} <= columns and "preview" not in columns
    conn.close()


async def test_a_version_2_sqlite_store_opens_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    write_v2_sqlite(path)
    store = SQLiteStore(path)
    await store.open()
    try:
        await check_reparse_of_old_mail(store)
    finally:
        await store.close()
    write_v2_sqlite(tmp_path / "again.sqlite3")
    store = SQLiteStore(tmp_path / "again.sqlite3")
    await store.open()
    try:
        await check_v1_content(store)  # the same content, read and purged by today's code
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"message_documents", "message_attachments", "dedupe_keys"} <= tables
    conn.close()


@pytest.mark.parametrize("write_old", [write_v1_sqlite, write_v2_sqlite])
async def test_a_migrated_sqlite_store_has_the_schema_of_a_new_one(
    tmp_path: Path, write_old: Callable[[Path], None]
) -> None:
    migrated, new = tmp_path / "migrated.sqlite3", tmp_path / "new.sqlite3"
    write_old(migrated)
    for path in (migrated, new):
        store = SQLiteStore(path)
        await store.open()
        await store.close()

    def schema(path: Path) -> list[tuple[str, ...]]:
        conn = sqlite3.connect(path)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
        shape = [
            (table, *(f"{c[1]}:{c[2]}:{c[3]}" for c in conn.execute(f"PRAGMA table_info({table})")))
            for table in tables
        ]
        conn.close()
        return shape

    assert schema(migrated) == schema(new)


async def test_processes_opening_one_old_sqlite_store_at_once_migrate_it_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.sqlite3"
    write_v1_sqlite(path)
    stores = [SQLiteStore(path) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        await check_v1_content(stores[0])
    finally:
        for store in stores:
            await store.close()


async def test_a_sqlite_store_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SQLiteStore(path)
    with pytest.raises(Exception, match="newer than this code"):
        await store.open()


# --- MongoDB ---------------------------------------------------------------------------------
@pytest.fixture
async def mongo_v1(ferretdb_url: str) -> AsyncIterator[tuple[str, str]]:
    """A database as the first release wrote it: its documents and no schema record."""
    from pymongo import AsyncMongoClient

    name = f"test_v1_{uuid.uuid4().hex}"
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(ferretdb_url, tz_aware=True)
    db = client[name]
    await db["mailboxes"].insert_one(
        {
            "_id": ADDR,
            "id": MAILBOX.id,
            "token_hash": MAILBOX.token_hash,
            "created_at": utc_ms(MAILBOX.created_at),
            "expires_at": utc_ms(MAILBOX.expires_at),
            "purge_after": utc_ms(MAILBOX.purge_after),
            "last_seq": 1,
        }
    )
    await db["messages"].insert_one(
        {
            "_id": "msg1",
            "address": ADDR,
            "seq": 1,
            "ingest_id": "ingest1",
            "received_at": utc_ms(NOW - DAY),
            "expires_at": utc_ms(NOW + DAY),
            "size": len(RAW),
            "sender": "Zoë <a@example.test>",
            "subject": "old",
            "preview": "written at version 1",
            "parse_errors": ["message: MissingHeaderBodySeparatorDefect"],
            "seen": False,
        }
    )
    await db["message_chunks"].insert_one(
        {
            "_id": "msg1:0",
            "message_id": "msg1",
            "n": 0,
            "data": RAW,
            "expires_at": utc_ms(NOW + DAY),
        }
    )
    try:
        yield ferretdb_url, name
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_version_1_mongodb_store_opens_and_records_its_version(
    mongo_v1: tuple[str, str],
) -> None:
    url, name = mongo_v1
    stores = [MongoStore(url, name) for _ in range(3)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        meta = await stores[0]._meta.find_one({"_id": "schema"})
        assert meta is not None and meta["version"] == MONGO_SCHEMA_VERSION == 2
        assert await stores[0]._meta.count_documents({"_id": "migration-lease"}) == 0
        await check_v1_content(stores[1])
    finally:
        for store in stores:
            await store.close()


async def test_a_version_1_mongodb_store_migrates_to_the_whole_parse(
    mongo_v1: tuple[str, str],
) -> None:
    url, name = mongo_v1
    store = MongoStore(url, name)
    await store.open()
    try:
        doc = await store._messages.find_one({"_id": "msg1"})
        assert doc is not None and doc["parser_version"] == 0
        indexes = {
            collection.name: set(await collection.index_information())
            for collection in (store._documents, store._attachments, store._keys)
        }
        assert indexes == {
            "message_documents": {"_id_", "documents_by_message", "documents_by_expiry"},
            "message_attachments": {"_id_", "attachments_by_message", "attachments_by_expiry"},
            "dedupe_keys": {"_id_", "keys_by_address", "keys_by_expiry"},
        }
        await check_reparse_of_old_mail(store)
    finally:
        await store.close()


async def test_a_mongodb_store_newer_than_the_code_is_refused(mongo_v1: tuple[str, str]) -> None:
    url, name = mongo_v1
    store = MongoStore(url, name)
    await store.open()
    await store._meta.update_one({"_id": "schema"}, {"$set": {"version": 99}})
    await store.close()
    with pytest.raises(Exception, match="newer than this code"):
        await store.open()


async def test_a_dead_migrators_lease_is_taken_over(mongo_v1: tuple[str, str]) -> None:
    url, name = mongo_v1
    store = MongoStore(url, name)
    await store.open()
    await store._meta.delete_one({"_id": "schema"})
    stale = utc_ms(NOW - timedelta(seconds=LEASE_S))
    await store._meta.insert_one({"_id": "migration-lease", "owner": "dead", "until": stale})
    await store.close()
    await store.open()
    try:
        meta = await store._meta.find_one({"_id": "schema"})
        assert meta is not None and meta["version"] == MONGO_SCHEMA_VERSION
    finally:
        await store.close()
