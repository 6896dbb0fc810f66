"""The store's rules, pure: both adapters gather the facts, these functions decide.

An adapter differs from the other only in how it finds the facts and writes the
outcome. Times are compared at the millisecond, which is what both adapters keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store._common import to_ms
from store.port import NewMessage, WriteStatus


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the store holds that bears on writing one message."""

    #: The seq of the message already stored under this id, if any.
    existing_seq: int | None
    #: A tombstone exists for this id (the message was deleted).
    tombstoned: bool
    #: When the recipient's mailbox record was created; ``None`` when there is none.
    mailbox_created_at: datetime | None


def decide_write(message: NewMessage, facts: MessageFacts, now: datetime) -> WriteStatus:
    """What happens to ``message``, in this order; only ``inserted`` writes anything.

    1. ``existing``: stored before (redelivery, replay): nothing changes.
    2. ``tombstoned``: deleted by its owner; a replay must not revive it.
    3. ``expired``: its ``expires_at`` is not after ``now``.
    4. ``no_mailbox``: the address has no mailbox record.
    5. ``predates_mailbox``: received before the mailbox was created, so it was mail of
       a previous owner of the address (or sent before anyone held it).
    6. ``inserted``.
    """
    if facts.existing_seq is not None:
        return "existing"
    if facts.tombstoned:
        return "tombstoned"
    if to_ms(message.expires_at) <= to_ms(now):
        return "expired"
    if facts.mailbox_created_at is None:
        return "no_mailbox"
    if to_ms(message.received_at) < to_ms(facts.mailbox_created_at):
        return "predates_mailbox"
    return "inserted"


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
