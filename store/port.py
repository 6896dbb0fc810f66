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
  changes nothing (unless a newer parser made it: see *Re-parse*) and returns the first
  write's sequence number. What happens to each message is
  :func:`store.rules.decide_write`; a batch's results are as if its messages were
  written one after the other.
* **Per-mailbox sequence.** Assigned once, at the first insert, from a counter on the
  mailbox record: monotonic, gaps allowed. One writer per mailbox (partitioning).
* **The whole parse.** Beside its summary (the flat :class:`~schemas.mail.MailSummary`
  fields, what lists read), a message keeps its :class:`~schemas.mail.ParsedMail`
  document as JSON and its attachments' decoded bytes, each apart from the message row
  (lists read neither), and the parser version that made them. Raw bytes are always
  kept. :meth:`MailStore.get_document` and :meth:`MailStore.get_attachment` read them.
* **Re-parse.** A message written again under its id with a higher ``parser_version``
  than the stored one (and not expired) is ``updated``: its summary, document,
  attachments and parser version are replaced; its ``seq``, ``seen``, ``received_at``,
  expiry and raw bytes are kept. The same or a lower version is ``existing``. Document
  and attachment pieces are keyed by parser version too, so a reader sees either the
  old parse or the new one, never a mix, even on MongoDB (no transactions).
* **Sender retries stored once.** A new message with a non-empty ``dedupe_key`` (the
  caller makes it from the mailbox, the ``Message-ID:`` and the body digest; mail
  without a Message-ID has none) whose key is held, in the same mailbox, by a copy
  received within :data:`DEDUPE_WINDOW` of it (before or after) is a ``duplicate``:
  nothing is written,
  and the result names the first copy (``duplicate_of``, and its ``seq`` while it is
  stored and unexpired). The key is kept in its own table/collection, unique per
  (address, key), and lives until its copy's expiry plus :data:`DEDUPE_WINDOW`, so a
  replay deduplicates the same way. Deleting the copy keeps its key (a retry of a
  deleted mail stays deleted); a take-over removes the previous owner's keys. A copy
  received further apart is stored as a new message, and the key moves to it if it is
  the later one: a key names the latest-received stored copy
  (:func:`store.rules.dedupe_key_moves`).
* **Take-over.** An address whose record is past ``purge_after`` (or was purged) can be
  created again. The new record keeps the counter above every seq the address used, and
  every message received before its creation is deleted, with its raw bytes, document,
  attachments and dedupe keys; such a message can never be written to it again
  (``predates_mailbox``), so a replay cannot bring it back.
* **Tombstones.** Deleting a message (with its raw bytes, document and attachments)
  leaves a tombstone until the message would have expired, so a replay does not bring
  it back.
* **Large mail.** Raw bytes, documents and attachments live apart from the message
  document, in chunks of :data:`CHUNK_SIZE` (well under MongoDB's 16 MB document
  limit). Each chunk carries its message's expiry and is purged by it, so a chunk left
  without its message goes too.
* **Expiry.** A message whose ``expires_at`` is not after the read's ``now`` is
  invisible to every read at once (``now`` defaults to the current UTC time), before the
  next :meth:`MailStore.purge_expired` deletes it. A purge reports the mailbox
  addresses whose records it removed (at most :data:`MAILBOX_PURGE_LIMIT` per call; the
  rest go at the next call), so streams can publish their lifecycle tombstones.
* **Isolation.** Every message read is scoped by mailbox address: another mailbox's id
  is simply not found.
* **Time.** Datetimes are timezone-aware UTC; adapters store them at millisecond
  precision.
* **Mailbox lifecycle.** A record is kept through its cooldown (until ``purge_after``)
  whether it expired or was deleted, so a token that once opened it is recognised.
  :meth:`MailStore.mark_mailbox_deleted` flags it deleted and ends it at once;
  :meth:`MailStore.extend_mailbox` moves its expiry (compare-and-set on the old one).
* **Lifecycle outbox.** ``create_mailbox``, ``extend_mailbox`` and
  ``mark_mailbox_deleted`` take the lifecycle event of their change and keep it as
  pending, in the same transaction (SQLite) or written just before the change and
  removed if the change did not happen (MongoDB, so a crash can leave an event whose
  change never happened, never a change without its event). The API publishes pending
  events oldest first and removes each once the broker acknowledged it.
* **Schema versions.** Each adapter records its schema version and migrates an older
  store when it opens it, under a lock (SQLite) or a lease (MongoDB), so processes that
  open one store at once migrate it once. A store newer than the code is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, Self, runtime_checkable

from pydantic import model_validator

from schemas.mail import MailSummary, ParsedMail
from schemas.records import MailboxLifecycleEvent

#: Raw bytes, documents and attachments are stored in chunks of this size.
CHUNK_SIZE = 1024 * 1024

#: Copies with one dedupe key received at most this far apart are one mail (sender retries).
DEDUPE_WINDOW = timedelta(hours=24)

#: The most messages one transaction (or bulk call) of :meth:`MailStore.delete_messages` removes.
DELETE_BATCH = 500

#: The most mailbox records one :meth:`MailStore.purge_expired` call removes.
MAILBOX_PURGE_LIMIT = 10_000


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
    #: Deleted by its owner; the record stays (an address held) until ``purge_after``.
    deleted: bool = False
    #: The last authenticated request seen (written at most about once a minute).
    visited_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingLifecycleEvent:
    """A lifecycle event in the store's outbox, not yet acknowledged by the broker."""

    #: Opaque, and ordered: the outbox lists events in the order they were written.
    id: str
    event: MailboxLifecycleEvent


class NewMessage(MailSummary):
    """A parsed mail ready to be written: its summary, where it goes, and its exact raw bytes.

    The summary fields are the message's own (what lists show); ``document`` is the
    whole parse, whose summary fields are the same.
    """

    id: str
    address: str
    ingest_id: str
    received_at: datetime
    expires_at: datetime
    raw: bytes
    #: The full parse, or ``None`` (a store of summary and raw bytes only).
    document: ParsedMail | None = None
    #: The decoded bytes of ``document.attachments[i]``, in the same order.
    attachment_data: tuple[bytes, ...] = ()
    #: The version of the parser that made the summary and the document.
    parser_version: int = 0
    #: Non-empty only for a mail with a ``Message-ID:`` and a body digest (the caller
    #: makes it); copies with one key are stored once (see the module docstring).
    dedupe_key: str = ""

    @model_validator(mode="after")
    def _attachments_match_the_document(self) -> Self:
        listed = () if self.document is None else self.document.attachments
        if len(listed) != len(self.attachment_data):
            raise ValueError(
                f"{len(self.attachment_data)} attachment(s) of data for "
                f"{len(listed)} in the document"
            )
        ids = [attachment.id for attachment in listed]
        if len(set(ids)) != len(ids):
            raise ValueError(f"attachment ids repeat within the message: {ids}")
        return self


class StoredMessage(MailSummary):
    """A stored message as lists show it (no raw bytes, no document)."""

    id: str
    address: str
    seq: int
    ingest_id: str
    received_at: datetime
    expires_at: datetime
    size: int
    seen: bool = False
    parser_version: int = 0


WriteStatus = Literal[
    "inserted",
    "updated",
    "existing",
    "duplicate",
    "tombstoned",
    "expired",
    "no_mailbox",
    "predates_mailbox",
]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :meth:`MailStore.store_messages` did with one message."""

    id: str
    address: str
    status: WriteStatus
    #: The message's sequence number when it is stored (``inserted``, ``updated``,
    #: ``existing``); for a ``duplicate``, the first copy's while it is stored.
    seq: int | None = None
    #: For a ``duplicate``: the id of the copy that was stored.
    duplicate_of: str | None = None
    #: The id of the mailbox record the message belongs to (:func:`store.rules.owner_of`),
    #: whatever the status; ``None`` when the address has no record that owns it.
    mailbox_id: str | None = None


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    """What one :meth:`MailStore.purge_expired` call deleted (chunk counts are pieces)."""

    messages: int = 0
    chunks: int = 0
    tombstones: int = 0
    mailboxes: int = 0
    document_chunks: int = 0
    attachment_chunks: int = 0
    dedupe_keys: int = 0
    #: The addresses whose mailbox records this call removed (``mailboxes`` of them);
    #: left out of the repr, which the purge logs.
    addresses: tuple[str, ...] = field(default=(), repr=False)


@runtime_checkable
class MailStore(Protocol):
    """The storage port. Every method is a coroutine and never blocks the event loop.

    Message reads take ``now`` (default: the current UTC time) and never return a
    message whose ``expires_at`` is not after it.
    """

    async def open(self) -> None:
        """Connect and create the schema and indexes if missing (idempotent)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`StoreError` if the store cannot be reached."""

    # --- mailboxes ------------------------------------------------------------------------
    async def create_mailbox(
        self, mailbox: Mailbox, now: datetime, *, event: MailboxLifecycleEvent | None = None
    ) -> bool:
        """Insert ``mailbox``; False if its address is held (active or cooling down).

        A record whose ``purge_after`` has passed no longer holds its address: it is
        taken over (see the module docstring). Token hashes are unique: a hash another
        mailbox holds makes this return False. ``event`` goes to the outbox when it is
        created.
        """

    async def get_mailbox(self, address: str) -> Mailbox | None: ...

    async def get_mailbox_by_token(self, token_hash: str) -> Mailbox | None:
        """The record this token hash opens, also while it is expired or deleted (until
        it is purged or taken over)."""

    async def touch_mailbox(self, address: str, visited_at: datetime) -> None:
        """Record a visit (``visited_at``); nothing for an unknown address."""

    async def extend_mailbox(
        self,
        address: str,
        *,
        expires_at_was: datetime,
        expires_at: datetime,
        purge_after: datetime,
        event: MailboxLifecycleEvent,
    ) -> bool:
        """Move a live record's expiry and ``purge_after``, if it is not deleted and its
        expiry is still ``expires_at_was`` (so two extensions cannot both apply); False
        otherwise. ``event`` goes to the outbox when it is moved."""

    async def mark_mailbox_deleted(
        self, address: str, *, now: datetime, purge_after: datetime, event: MailboxLifecycleEvent
    ) -> bool:
        """Flag a record deleted, end it at ``now`` (its expiry, if later) and hold its
        address until ``purge_after``; False for a missing or already deleted one.
        ``event`` goes to the outbox when it is flagged. Its messages are not touched."""

    async def count_messages(self, address: str, *, now: datetime | None = None) -> int:
        """How many visible messages ``address`` holds."""

    # --- lifecycle outbox -------------------------------------------------------------------
    async def pending_lifecycle_events(self, limit: int) -> list[PendingLifecycleEvent]:
        """The oldest pending lifecycle events, at most ``limit``, oldest first."""

    async def remove_lifecycle_event(self, event_id: str) -> None:
        """Forget a published event (nothing if it is gone already)."""

    # --- messages -------------------------------------------------------------------------
    async def store_messages(self, batch: Sequence[NewMessage], now: datetime) -> list[WriteResult]:
        """Write a batch in one transaction (SQLite) or one unordered bulk write (MongoDB).

        Results are in the order of ``batch``, each :func:`store.rules.decide_write`'s,
        as if the messages were written one after the other. Only ``inserted`` and
        ``updated`` write anything; ``existing`` and ``updated`` carry the stored seq,
        ``duplicate`` the first copy's.
        """

    async def list_messages(
        self,
        address: str,
        *,
        limit: int,
        before_seq: int | None = None,
        now: datetime | None = None,
    ) -> list[StoredMessage]:
        """Newest first (by ``seq``), at most ``limit``, only ``seq < before_seq`` if given."""

    async def list_messages_after(
        self, address: str, after_seq: int, *, limit: int, now: datetime | None = None
    ) -> list[StoredMessage]:
        """Oldest first, ``seq > after_seq``: to resume a live stream from ``Last-Event-ID``."""

    async def get_message(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> StoredMessage | None: ...

    async def get_raw(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> bytes | None: ...

    async def get_document(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> ParsedMail | None:
        """The stored parse; ``None`` also for a message stored without one."""

    async def get_attachment(
        self, address: str, message_id: str, attachment_id: str, *, now: datetime | None = None
    ) -> bytes | None:
        """The decoded bytes of the document's attachment ``attachment_id``."""

    async def delete_message(self, address: str, message_id: str) -> bool:
        """Delete one message, its raw bytes, document and attachments, leaving a tombstone
        until its expiry (its dedupe key stays too)."""

    async def delete_messages(self, address: str) -> int:
        """Delete every message of ``address`` as :meth:`delete_message` does (tombstones
        included), in batches of at most :data:`DELETE_BATCH`; the number deleted."""

    async def set_seen(
        self, address: str, message_id: str, seen: bool, *, now: datetime | None = None
    ) -> bool:
        """Mark a visible message seen or not; False when there is no such message."""

    async def purge_expired(
        self, now: datetime, *, mailbox_limit: int = MAILBOX_PURGE_LIMIT
    ) -> PurgeCounts:
        """Delete expired messages; raw, document and attachment chunks and tombstones
        past their expiry; dedupe keys past theirs; and at most ``mailbox_limit``
        mailboxes past ``purge_after``, whose addresses the result lists."""
