"""Constants and helpers the store tests share (fixtures live in ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

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
