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
