"""Constants and helpers the store tests share (fixtures live in ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from store import Mailbox, MailStore, NewMessage, WriteResult

#: The tests' "now": real time (so a real MongoDB's TTL monitor leaves their documents
#: alone), at a whole millisecond so that stored values compare exactly.
NOW = datetime.now(UTC).replace(microsecond=123000)

ADDR = "alice@tmpmail.test"
OTHER = "bob@tmpmail.test"
THIRD = "carol@tmpmail.test"

MailboxFactory = Callable[..., Mailbox]
MessageFactory = Callable[..., NewMessage]


async def store_many(
    store: MailStore, make_message: MessageFactory, address: str, count: int, *, batch_size: int
) -> list[WriteResult]:
    """Store ``count`` fresh messages for ``address`` in batches; all must be inserted."""
    results: list[WriteResult] = []
    for start in range(0, count, batch_size):
        batch = [make_message(address) for _ in range(min(batch_size, count - start))]
        results += await store.store_messages(batch, NOW)
    assert {r.status for r in results} == {"inserted"}
    return results


# --- peeking under the port (the contract's chunk rules are not visible through it) ------------
async def raw_chunk_count(store: MailStore) -> int:
    """How many raw chunks the adapter holds, whatever message they belong to."""
    from store.mongodb import MongoStore
    from store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        count: int = await store._read(
            lambda conn: conn.execute("SELECT count(*) FROM message_chunks").fetchone()[0]
        )
        return count
    assert isinstance(store, MongoStore)
    return await store._chunks.count_documents({})


async def plant_orphan_chunk(store: MailStore, message_id: str, expires_at: datetime) -> None:
    """A raw chunk whose message was never written (a crash between the two writes)."""
    from store._common import to_ms, utc_ms
    from store.mongodb import MongoStore
    from store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        await store._write(
            lambda conn: conn.execute(
                "INSERT INTO message_chunks (message_id, n, data, expires_at) VALUES (?, 0, ?, ?)",
                (message_id, b"orphan", to_ms(expires_at)),
            )
        )
        return
    assert isinstance(store, MongoStore)
    await store._chunks.insert_one(
        {
            "_id": f"{message_id}:0",
            "message_id": message_id,
            "n": 0,
            "data": b"orphan",
            "expires_at": utc_ms(expires_at),
        }
    )


def parse_of(
    subject: str, attachments: dict[str, bytes] | None = None, *, version: int = 1
) -> dict[str, object]:
    """``make_message`` fields for a message with a whole parse: its document (whose
    summary is the message's), the attachments' bytes and the parser version."""
    from schemas.mail import AttachmentInfo, MailAddress, ParsedMail

    attachments = attachments or {}
    document = ParsedMail(
        subject=subject,
        sender="Zoë <zoe@example.test>",
        preview=f"{subject} text",
        parser_version=version,
        date=NOW.astimezone(timezone(timedelta(hours=2))),
        from_=(MailAddress(name="Zoë", address="zoe@example.test"),),
        to=(MailAddress(address="alice@tmpmail.test"),),
        text=f"{subject} text",
        html=f"<p>{subject} ✉ <img src='cid:logo@x'></p>",
        attachments=tuple(
            AttachmentInfo(id=aid, filename=f"{aid}.bin", size=len(data))
            for aid, data in attachments.items()
        ),
        cid_map={"logo@x": next(iter(attachments), "")},
        headers=(("Subject", subject), ("X-Weird", "a\x00b")),
    )
    return {
        "subject": subject,
        "sender": document.sender,
        "preview": document.preview,
        "document": document,
        "attachment_data": tuple(attachments.values()),
        "parser_version": version,
    }


# --- more peeking under the port ----------------------------------------------------------
PIECES = {
    "raw": ("message_chunks", "_chunks"),
    "documents": ("message_documents", "_documents"),
    "attachments": ("message_attachments", "_attachments"),
    "keys": ("dedupe_keys", "_keys"),
}


async def piece_count(store: MailStore, kind: str) -> int:
    """How many pieces of ``kind`` (raw, documents, attachments, keys) the adapter holds."""
    from store.mongodb import MongoStore
    from store.sqlite import SQLiteStore

    table, collection = PIECES[kind]
    if isinstance(store, SQLiteStore):
        count: int = await store._read(
            lambda conn: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        )
        return count
    assert isinstance(store, MongoStore)
    return await getattr(store, collection).count_documents({})


async def mark_seen(store: MailStore, message_id: str) -> None:
    """Set a message's ``seen`` flag (the port has no call for it yet)."""
    from store.mongodb import MongoStore
    from store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        await store._write(
            lambda conn: conn.execute("UPDATE messages SET seen = 1 WHERE id = ?", (message_id,))
        )
        return
    assert isinstance(store, MongoStore)
    await store._messages.update_one({"_id": message_id}, {"$set": {"seen": True}})


async def plant_orphan_attachment(store: MailStore, message_id: str, expires_at: datetime) -> None:
    """An attachment chunk whose message was never written."""
    from store._common import to_ms, utc_ms
    from store.mongodb import MongoStore
    from store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        await store._write(
            lambda conn: conn.execute(
                "INSERT INTO message_attachments (message_id, parser_version, attachment_id, n,"
                " size, data, expires_at) VALUES (?, 1, 'a', 0, 6, ?, ?)",
                (message_id, b"orphan", to_ms(expires_at)),
            )
        )
        return
    assert isinstance(store, MongoStore)
    await store._attachments.insert_one(
        {
            "_id": f"{message_id}\x001\x00a\x000",
            "message_id": message_id,
            "parser_version": 1,
            "attachment_id": "a",
            "n": 0,
            "size": 6,
            "data": b"orphan",
            "expires_at": utc_ms(expires_at),
        }
    )
