"""The caller's mailbox: its state, extension, deletion and the browser's recent ones.

Every lifecycle change is one store call that also puts its event in the outbox
(:mod:`api.outbox` publishes it); the routes in :mod:`api.mailbox_routes` only
translate HTTP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from api.errors import Conflict, NotExtendable
from api.mailbox_policy import decide_extension
from api.service import hash_token, lifecycle_event
from schemas.api import MailboxState, RecentMailbox
from schemas.settings import Settings
from store import Mailbox, MailStore


async def mailbox_state(
    store: MailStore, mailbox: Mailbox, now: datetime, settings: Settings
) -> MailboxState:
    count = await store.count_messages(mailbox.address, now=now)
    extension = decide_extension(mailbox, count, now, settings)
    return MailboxState(
        address=mailbox.address,
        created_at=mailbox.created_at,
        expires_at=mailbox.expires_at,
        message_count=count,
        can_extend=extension.allowed,
        extend_until=extension.until,
        reason=extension.reason,
        reason_message=extension.explanation or None,
    )


async def extend_mailbox(
    store: MailStore, mailbox: Mailbox, now: datetime, settings: Settings
) -> Mailbox:
    """Extend when :func:`~api.mailbox_policy.decide_extension` allows it (else 409 with
    its reason); the store moves expiry and ``purge_after`` and keeps the event."""
    count = await store.count_messages(mailbox.address, now=now)
    extension = decide_extension(mailbox, count, now, settings)
    if extension.until is None or extension.reason is not None:
        raise NotExtendable(extension.reason or "not_extendable", extension.explanation)
    purge_after = extension.until + settings.mailbox_cooldown
    moved = await store.extend_mailbox(
        mailbox.address,
        expires_at_was=mailbox.expires_at,
        expires_at=extension.until,
        purge_after=purge_after,
        event=lifecycle_event("extended", mailbox, now, expires_at=extension.until),
    )
    if not moved:
        raise Conflict("the mailbox changed meanwhile; try again")
    return dataclasses.replace(mailbox, expires_at=extension.until, purge_after=purge_after)


async def delete_mailbox(
    store: MailStore, mailbox: Mailbox, now: datetime, settings: Settings
) -> None:
    """Flag the mailbox deleted (its address held through the cooldown), with its event,
    then delete its mail, tombstones included. Flagged first, so its token stops at once
    and streams treats it as ended; mail a failure leaves behind goes at its expiry."""
    await store.mark_mailbox_deleted(
        mailbox.address,
        now=now,
        purge_after=now + settings.mailbox_cooldown,
        event=lifecycle_event("deleted", mailbox, now, expires_at=now),
    )
    await store.delete_messages(mailbox.address)


async def still_live(store: MailStore, mailbox: Mailbox, now: datetime) -> Mailbox | None:
    """``mailbox`` as the store has it now (extended, perhaps) while it is the same live
    mailbox; ``None`` once it has expired or was deleted, or its address has another
    owner. A live stream asks before it passes on mail, so that it ends with its mailbox
    and never carries the next owner's."""
    current = await store.get_mailbox(mailbox.address)
    if current is None or current.id != mailbox.id or current.deleted:
        return None
    return current if current.expires_at > now else None


async def live_mailboxes(
    store: MailStore, tokens: Sequence[str], now: datetime
) -> list[tuple[str, Mailbox]]:
    """The tokens (in order) whose mailboxes are live, with them."""
    live = []
    for token in tokens:
        mailbox = await store.get_mailbox_by_token(hash_token(token))
        if mailbox is not None and not mailbox.deleted and mailbox.expires_at > now:
            live.append((token, mailbox))
    return live


def recent_entries(mailboxes: Sequence[Mailbox], current: str | None) -> list[RecentMailbox]:
    return [
        RecentMailbox(address=m.address, expires_at=m.expires_at, current=m.address == current)
        for m in mailboxes
    ]
