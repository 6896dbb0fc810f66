"""The mailbox-lifecycle part of the storage contract, run against every adapter: visits,
extension, deletion (the record kept through its cooldown), counts and the outbox."""

from __future__ import annotations

from datetime import timedelta

from schemas.records import MailboxLifecycleEvent
from store import Mailbox, MailStore
from tests.store.store_support import ADDR, NOW, OTHER, MailboxFactory, MessageFactory

DAY = timedelta(days=1)


def event_of(mailbox: Mailbox, kind: str = "created", **fields: object) -> MailboxLifecycleEvent:
    values: dict[str, object] = {
        "kind": kind,
        "address": mailbox.address,
        "mailbox_id": mailbox.id,
        "created_at": mailbox.created_at,
        "expires_at": mailbox.expires_at,
        "at": NOW,
    }
    values.update(fields)
    return MailboxLifecycleEvent.model_validate(values)


async def test_a_new_record_is_neither_deleted_nor_visited(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    assert await store.create_mailbox(make_mailbox(ADDR), NOW)
    got = await store.get_mailbox(ADDR)
    assert got is not None and got.deleted is False and got.visited_at is None


async def test_a_visit_is_recorded(store: MailStore, make_mailbox: MailboxFactory) -> None:
    mailbox = make_mailbox(ADDR)
    await store.create_mailbox(mailbox, NOW)
    await store.touch_mailbox(ADDR, NOW + timedelta(minutes=5))
    await store.touch_mailbox(OTHER, NOW)  # unknown: nothing happens
    got = await store.get_mailbox_by_token(mailbox.token_hash)
    assert got is not None and got.visited_at == NOW + timedelta(minutes=5)
    assert await store.get_mailbox(OTHER) is None


async def test_creation_puts_its_event_in_the_outbox_only_when_it_applies(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    first = make_mailbox(ADDR)
    assert await store.create_mailbox(first, NOW, event=event_of(first))
    taken = make_mailbox(ADDR)
    assert not await store.create_mailbox(taken, NOW, event=event_of(taken))
    pending = await store.pending_lifecycle_events(10)
    assert [p.event for p in pending] == [event_of(first)]


async def test_the_outbox_lists_oldest_first_and_forgets_removed_events(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    mailboxes = [make_mailbox(f"user{i}@tmpmail.test") for i in range(4)]
    for mailbox in mailboxes:
        assert await store.create_mailbox(mailbox, NOW, event=event_of(mailbox))
    pending = await store.pending_lifecycle_events(10)
    assert [p.event.address for p in pending] == [m.address for m in mailboxes]
    assert len(await store.pending_lifecycle_events(2)) == 2
    assert await store.pending_lifecycle_events(0) == []
    await store.remove_lifecycle_event(pending[1].id)
    await store.remove_lifecycle_event(pending[1].id)  # again: nothing
    left = await store.pending_lifecycle_events(10)
    assert [p.id for p in left] == [pending[0].id, pending[2].id, pending[3].id]


async def test_extension_moves_expiry_and_purge_after_once(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    mailbox = make_mailbox(ADDR)
    await store.create_mailbox(mailbox, NOW)
    later, purge = mailbox.expires_at + 15 * DAY, mailbox.expires_at + 45 * DAY
    event = event_of(mailbox, "extended", expires_at=later)
    moved = await store.extend_mailbox(
        ADDR, expires_at_was=mailbox.expires_at, expires_at=later, purge_after=purge, event=event
    )
    assert moved
    again = await store.extend_mailbox(  # a stale read: the compare-and-set refuses it
        ADDR, expires_at_was=mailbox.expires_at, expires_at=later, purge_after=purge, event=event
    )
    assert not again
    got = await store.get_mailbox(ADDR)
    assert got is not None and (got.expires_at, got.purge_after) == (later, purge)
    assert [p.event for p in await store.pending_lifecycle_events(10)] == [event]
    assert not await store.extend_mailbox(
        OTHER, expires_at_was=NOW, expires_at=later, purge_after=purge, event=event
    )


async def test_deletion_keeps_the_record_flagged_and_holds_the_address(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    mailbox = make_mailbox(ADDR)
    await store.create_mailbox(mailbox, NOW)
    event = event_of(mailbox, "deleted", expires_at=NOW)
    purge = NOW + 30 * DAY
    assert await store.mark_mailbox_deleted(ADDR, now=NOW, purge_after=purge, event=event)
    assert not await store.mark_mailbox_deleted(ADDR, now=NOW, purge_after=purge, event=event)
    got = await store.get_mailbox_by_token(mailbox.token_hash)
    assert got is not None and got.deleted
    assert (got.expires_at, got.purge_after) == (NOW, purge)
    assert [p.event for p in await store.pending_lifecycle_events(10)] == [event]
    # a deleted record cannot be extended, and holds its address through the cooldown
    assert not await store.extend_mailbox(
        ADDR, expires_at_was=NOW, expires_at=NOW + DAY, purge_after=purge, event=event
    )
    assert not await store.create_mailbox(make_mailbox(ADDR), NOW + DAY)
    # past purge_after it is taken over, and the new record is not deleted
    fresh = make_mailbox(ADDR, created_at=purge, expires_at=purge + DAY, purge_after=purge + DAY)
    assert await store.create_mailbox(fresh, purge)
    got = await store.get_mailbox(ADDR)
    assert got is not None and not got.deleted and got.id == fresh.id
    assert await store.get_mailbox_by_token(mailbox.token_hash) is None


async def test_deletion_keeps_an_earlier_expiry(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    mailbox = make_mailbox(ADDR, expires_at=NOW - DAY)
    await store.create_mailbox(mailbox, NOW)
    event = event_of(mailbox, "deleted")
    assert await store.mark_mailbox_deleted(ADDR, now=NOW, purge_after=NOW + DAY, event=event)
    got = await store.get_mailbox(ADDR)
    assert got is not None and got.expires_at == NOW - DAY


async def test_count_messages_counts_visible_mail_of_one_mailbox(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    await store.create_mailbox(make_mailbox(OTHER), NOW)
    soon = make_message(ADDR, expires_at=NOW + timedelta(hours=1))
    batch = [make_message(ADDR), make_message(ADDR), soon, make_message(OTHER)]
    await store.store_messages(batch, NOW)
    assert await store.count_messages(ADDR, now=NOW) == 3
    assert await store.count_messages(ADDR, now=NOW + timedelta(hours=2)) == 2
    assert await store.count_messages(OTHER, now=NOW) == 1
    assert await store.count_messages("nobody@tmpmail.test", now=NOW) == 0
