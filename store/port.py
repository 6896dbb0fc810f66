"""The storage port: what streams and api need from a store, and nothing more.

Two adapters implement :class:`MailStore` and pass the same contract suite
(``tests/store/test_contract.py``):

* :class:`store.sqlite.SQLiteStore`, the embedded default for one machine;
* :class:`store.mongodb.MongoStore`, for compose, Kubernetes and several machines.

Rules every adapter keeps. Those that decide something are pure functions in
:mod:`store.rules`, which both adapters call; the adapters differ only in how they talk
to their database.

* **Idempotent writes.** :meth:`MailStore.store_messages` is an upsert keyed by the
  message id (derived from ingest id + recipient). Writing the same message twice
  changes nothing and returns the first write's sequence number. What happens to each
  message is :func:`store.rules.decide_write`.
* **Per-mailbox sequence.** Assigned once, at the first insert, from a counter on the
  mailbox record: monotonic, gaps allowed. One writer per mailbox (partitioning).
* **Take-over.** An address whose record is past ``purge_after`` (or was purged) can be
  created again. The new record keeps the counter above every seq the address used, and
  every message received before its creation is deleted; such a message can never be
  written to it again (``predates_mailbox``), so a replay cannot bring it back.
* **Tombstones.** Deleting a message leaves a tombstone until the message would have
  expired, so a replay does not bring it back.
* **Large mail.** Raw bytes live apart from the message document, in chunks of
  :data:`CHUNK_SIZE` (well under MongoDB's 16 MB document limit). Each chunk carries its
  message's expiry and is purged by it, so a chunk left without its message goes too.
* **Isolation.** Every message read is scoped by mailbox address: another mailbox's id
  is simply not found.
* **Time.** Datetimes are timezone-aware UTC; adapters store them at millisecond
  precision.
* **Schema versions.** Each adapter records its schema version and migrates an older
  store when it opens it, under a lock (SQLite) or a lease (MongoDB), so processes that
  open one store at once migrate it once. A store newer than the code is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from schemas.mail import MailSummary

#: Raw bytes are stored in chunks of this size.
CHUNK_SIZE = 1024 * 1024


class StoreError(Exception):
    """The store could not do what was asked (unreachable, locked too long, corrupt)."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One address and its lifecycle. ``address`` is the normalised key."""

    id: str
    address: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    #: The record is kept until then (expiry + cooldown), so nobody else can take it.
    purge_after: datetime
    last_seq: int = 0


class NewMessage(MailSummary):
    """A parsed mail ready to be written: its summary, where it goes, and its exact raw bytes."""

    id: str
    address: str
    ingest_id: str
    received_at: datetime
    expires_at: datetime
    raw: bytes


class StoredMessage(MailSummary):
    """A stored message as lists show it (no raw bytes)."""

    id: str
    address: str
    seq: int
    ingest_id: str
    received_at: datetime
    expires_at: datetime
    size: int
    seen: bool = False


WriteStatus = Literal[
    "inserted", "existing", "tombstoned", "expired", "no_mailbox", "predates_mailbox"
]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :meth:`MailStore.store_messages` did with one message."""

    id: str
    address: str
    status: WriteStatus
    #: The message's sequence number when it is stored (``inserted`` or ``existing``).
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    messages: int = 0
    chunks: int = 0
    tombstones: int = 0
    mailboxes: int = 0


@runtime_checkable
class MailStore(Protocol):
    """The storage port. Every method is a coroutine and never blocks the event loop."""

    async def open(self) -> None:
        """Connect and create the schema and indexes if missing (idempotent)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`StoreError` if the store cannot be reached."""

    # --- mailboxes ------------------------------------------------------------------------
    async def create_mailbox(self, mailbox: Mailbox, now: datetime) -> bool:
        """Insert ``mailbox``; False if its address is held (active or cooling down).

        A record whose ``purge_after`` has passed no longer holds its address: it is
        taken over (see the module docstring). Token hashes are unique: a hash another
        mailbox holds makes this return False.
        """

    async def get_mailbox(self, address: str) -> Mailbox | None: ...

    async def get_mailbox_by_token(self, token_hash: str) -> Mailbox | None: ...

    # --- messages -------------------------------------------------------------------------
    async def store_messages(self, batch: Sequence[NewMessage], now: datetime) -> list[WriteResult]:
        """Write a batch in one transaction (SQLite) or one unordered bulk write (MongoDB).

        Results are in the order of ``batch``; each status is
        :func:`store.rules.decide_write`'s. Only ``inserted`` writes anything;
        ``existing`` carries the first write's ``seq``.
        """

    async def list_messages(
        self, address: str, *, limit: int, before_seq: int | None = None
    ) -> list[StoredMessage]:
        """Newest first (by ``seq``), at most ``limit``, only ``seq < before_seq`` if given."""

    async def list_messages_after(
        self, address: str, after_seq: int, *, limit: int
    ) -> list[StoredMessage]:
        """Oldest first, ``seq > after_seq``: to resume a live stream from ``Last-Event-ID``."""

    async def get_message(self, address: str, message_id: str) -> StoredMessage | None: ...

    async def get_raw(self, address: str, message_id: str) -> bytes | None: ...

    async def delete_message(self, address: str, message_id: str) -> bool:
        """Delete one message and its raw bytes, leaving a tombstone until its expiry."""

    async def purge_expired(self, now: datetime) -> PurgeCounts:
        """Delete expired messages, expired raw chunks, old tombstones, and mailboxes past
        ``purge_after``."""
