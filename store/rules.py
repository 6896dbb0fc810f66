"""The store's rules, pure: both adapters gather the facts, these functions decide.

An adapter differs from the other only in how it finds the facts and writes the
outcome. Times are compared at the millisecond, which is what both adapters keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.mail import summary_fields
from store._common import to_ms
from store.port import DEDUPE_WINDOW, NewMessage, WriteStatus

_WINDOW_MS = DEDUPE_WINDOW // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class StoredCopy:
    """A message the store holds, as far as a write needs to know it."""

    seq: int
    expires_at: datetime
    parser_version: int = 0


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """The copy a dedupe key names: the latest-received copy stored under it."""

    message_id: str
    received_at: datetime
    #: That message while it is still stored (``None`` once deleted or purged).
    stored: StoredCopy | None


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the store holds that bears on writing one message."""

    #: The message already stored under this id, if any.
    existing: StoredCopy | None
    #: A tombstone exists for this id (the message was deleted).
    tombstoned: bool
    #: When the recipient's mailbox record was created; ``None`` when there is none.
    mailbox_created_at: datetime | None
    #: Who holds the message's dedupe key in its mailbox (``None``: no key, or nobody).
    key_holder: KeyHolder | None = None
    #: The id of the recipient's mailbox record (``None`` when there is none).
    mailbox_id: str | None = None


@dataclass(frozen=True, slots=True)
class WriteDecision:
    """What happens to one message: its status and the seq its result carries."""

    status: WriteStatus
    #: The stored seq (``existing``, ``updated``), the first copy's (``duplicate``, while
    #: it is stored and unexpired); ``None`` otherwise, and for ``inserted`` until the
    #: adapter allocates one.
    seq: int | None = None
    #: For a ``duplicate``: the first copy's id.
    duplicate_of: str | None = None


def decide_write(message: NewMessage, facts: MessageFacts, now: datetime) -> WriteDecision:
    """What happens to ``message``, in this order; only ``inserted`` and ``updated`` write.

    1. A message is stored under this id (redelivery, replay):

       * ``updated``: ``message`` comes from a newer parser than the stored one, which
         has not expired: its parse replaces the stored one (:func:`reparsed`);
       * ``existing`` otherwise: nothing changes.

    2. ``tombstoned``: deleted by its owner; a replay must not revive it.
    3. ``expired``: its ``expires_at`` is not after ``now``.
    4. ``no_mailbox``: the address has no mailbox record.
    5. ``predates_mailbox``: received before the mailbox was created, so it was mail of
       a previous owner of the address (or sent before anyone held it).
    6. ``duplicate``: another copy holds its dedupe key and was received within
       :data:`~store.port.DEDUPE_WINDOW` of it (a sender's retry): nothing is written.
    7. ``inserted``.
    """
    existing = facts.existing
    if existing is not None:
        if message.parser_version > existing.parser_version and _alive(existing, now):
            return WriteDecision("updated", existing.seq)
        return WriteDecision("existing", existing.seq)
    if facts.tombstoned:
        return WriteDecision("tombstoned")
    if to_ms(message.expires_at) <= to_ms(now):
        return WriteDecision("expired")
    if facts.mailbox_created_at is None:
        return WriteDecision("no_mailbox")
    if to_ms(message.received_at) < to_ms(facts.mailbox_created_at):
        return WriteDecision("predates_mailbox")
    holder = facts.key_holder
    if message.dedupe_key and holder is not None and holder.message_id != message.id:
        apart = abs(to_ms(message.received_at) - to_ms(holder.received_at))
        if apart <= _WINDOW_MS:
            stored = holder.stored
            seq = stored.seq if stored is not None and _alive(stored, now) else None
            return WriteDecision("duplicate", seq, holder.message_id)
    return WriteDecision("inserted")


def owner_of(message: NewMessage, facts: MessageFacts) -> str | None:
    """The id of the mailbox ``message`` belongs to: the address's record, when that was
    created before the message was received (else the message was a previous owner's,
    or nobody's). A live stream compares it with its own mailbox's, so that it never
    passes on mail of the address's next owner."""
    created = facts.mailbox_created_at
    if created is None or to_ms(message.received_at) < to_ms(created):
        return None
    return facts.mailbox_id


def dedupe_key_moves(message: NewMessage, holder: KeyHolder | None) -> bool:
    """Whether ``message``, now stored (inserted, updated or existing), should hold its
    dedupe key: it has one, and nobody holds it or a copy received before this one does.

    So a key names the latest-received copy, and an ``existing`` write restores a key
    that a crash between two MongoDB writes left unwritten or behind.
    """
    if not message.dedupe_key:
        return False
    if holder is None:
        return True
    return holder.message_id != message.id and to_ms(holder.received_at) < to_ms(
        message.received_at
    )


def dedupe_key_expires_at(copy_expires_at: datetime) -> datetime:
    """A key lives until its copy's expiry plus the window: as long as a retry of it can
    still be stored (or replayed) unexpired."""
    return copy_expires_at + DEDUPE_WINDOW


def reparsed(stored: NewMessage, reparse: NewMessage) -> NewMessage:
    """``stored`` with the parse of ``reparse`` (an ``updated`` write): summary, document,
    attachments and parser version replaced; id, times, raw bytes and key kept."""
    return stored.model_copy(
        update={
            **summary_fields(reparse),
            "document": reparse.document,
            "attachment_data": reparse.attachment_data,
            "parser_version": reparse.parser_version,
        }
    )


def address_is_free(held_purge_after: datetime | None, now: datetime) -> bool:
    """An address can be created when no record holds it, or its record is past
    ``purge_after`` (expired, and through its cooldown)."""
    return held_purge_after is None or to_ms(held_purge_after) <= to_ms(now)


def take_over_seq(*used: int | None) -> int:
    """The counter a new record of an address starts from: above every seq it used.

    ``used`` are the previous record's ``last_seq`` (if it still exists), the highest
    seq of any message of the address left in the store, and the requested start.
    """
    return max((seq for seq in used if seq is not None), default=0)


def _alive(stored: StoredCopy, now: datetime) -> bool:
    return to_ms(stored.expires_at) > to_ms(now)
