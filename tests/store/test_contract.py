"""The storage contract: one suite, run against every adapter (the rules of ``store/port.py``)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from store import CHUNK_SIZE, DEDUPE_WINDOW, MailStore, PurgeCounts, StoredMessage, StoreError
from tests.store.store_support import (
    ADDR,
    NOW,
    OTHER,
    THIRD,
    MailboxFactory,
    MessageFactory,
    mark_seen,
    parse_of,
    piece_count,
    plant_orphan_attachment,
    plant_orphan_chunk,
    raw_chunk_count,
    store_many,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)


# --- lifecycle ----------------------------------------------------------------------------------
async def test_is_a_mail_store_and_open_is_idempotent(store: MailStore) -> None:
    assert isinstance(store, MailStore)
    await store.open()
    await store.ping()


async def test_a_closed_store_raises_store_error(store: MailStore) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        await store.get_mailbox(ADDR)
    await store.close()  # closing twice is fine


# --- mailboxes ----------------------------------------------------------------------------------
async def test_mailbox_round_trip(store: MailStore, make_mailbox: MailboxFactory) -> None:
    mailbox = make_mailbox(ADDR)
    assert await store.create_mailbox(mailbox, NOW)
    assert await store.get_mailbox(ADDR) == mailbox
    assert await store.get_mailbox_by_token(mailbox.token_hash) == mailbox
    assert await store.get_mailbox(OTHER) is None
    assert await store.get_mailbox_by_token("no-such-token") is None


async def test_address_is_held_while_active_and_cooling_down(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    first = make_mailbox(ADDR, expires_at=NOW + DAY, purge_after=NOW + 2 * DAY)
    assert await store.create_mailbox(first, NOW)
    for now in (NOW, NOW + 1.5 * DAY, NOW + 2 * DAY - MS):
        assert not await store.create_mailbox(make_mailbox(ADDR), now)
    assert await store.get_mailbox(ADDR) == first


async def test_address_is_taken_over_once_purge_after_has_passed(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    first = make_mailbox(ADDR, expires_at=NOW + DAY, purge_after=NOW + 2 * DAY)
    assert await store.create_mailbox(first, NOW)
    leftover = make_message(ADDR, expires_at=NOW + 3 * DAY)
    [old] = await store.store_messages([leftover], NOW)

    later = NOW + 2 * DAY
    second = make_mailbox(
        ADDR, created_at=later, expires_at=later + 15 * DAY, purge_after=later + 45 * DAY
    )
    assert await store.create_mailbox(second, later)

    taken = await store.get_mailbox(ADDR)
    assert taken is not None
    assert (taken.id, taken.token_hash, taken.purge_after) == (
        second.id,
        second.token_hash,
        second.purge_after,
    )
    assert await store.get_mailbox_by_token(first.token_hash) is None
    # The previous owner's mail is gone, and sequence numbers do not repeat.
    assert await store.list_messages(ADDR, limit=10) == []
    assert await store.get_raw(ADDR, leftover.id) is None
    fresh = make_message(ADDR, received_at=later, expires_at=later + DAY)
    [new] = await store.store_messages([fresh], later)
    assert new.status == "inserted"
    assert new.seq is not None and old.seq is not None and new.seq > old.seq
    # Each write names the mailbox record it belongs to (what a live stream compares).
    assert (old.mailbox_id, new.mailbox_id) == (first.id, second.id)
    [again] = await store.store_messages([fresh], later)
    assert (again.status, again.mailbox_id) == ("existing", second.id)
    # A replay of the previous owner's mail cannot bring it into the new mailbox.
    [replayed] = await store.store_messages([leftover], later)
    assert replayed.status == "predates_mailbox"
    assert replayed.mailbox_id is None
    [nobodys] = await store.store_messages([make_message(OTHER, received_at=later)], later)
    assert (nobodys.status, nobodys.mailbox_id) == ("no_mailbox", None)
    assert [m.id for m in await store.list_messages(ADDR, limit=10)] == [fresh.id]


async def test_token_hashes_are_unique(store: MailStore, make_mailbox: MailboxFactory) -> None:
    holder = make_mailbox(ADDR)
    assert await store.create_mailbox(holder, NOW)
    assert not await store.create_mailbox(make_mailbox(OTHER, token_hash=holder.token_hash), NOW)
    assert await store.get_mailbox(OTHER) is None

    # Taking over a cooled-down address with a token someone else holds fails too.
    cooled = make_mailbox(THIRD, expires_at=NOW - DAY, purge_after=NOW - HOUR)
    assert await store.create_mailbox(cooled, NOW - 2 * DAY)
    assert not await store.create_mailbox(make_mailbox(THIRD, token_hash=holder.token_hash), NOW)
    assert await store.get_mailbox(THIRD) == cooled
    assert await store.get_mailbox_by_token(holder.token_hash) == holder


# --- writing messages ---------------------------------------------------------------------------
async def test_seqs_increase_per_mailbox_independently(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    for address in (ADDR, OTHER):
        await store.create_mailbox(make_mailbox(address), NOW)
    first = await store.store_messages(
        [make_message(ADDR), make_message(OTHER), make_message(ADDR)], NOW
    )
    second = await store.store_messages([make_message(ADDR), make_message(ADDR)], NOW)

    assert [r.status for r in first + second] == ["inserted"] * 5
    assert [(r.address, r.seq) for r in first + second] == [
        (ADDR, 1),
        (OTHER, 1),
        (ADDR, 2),
        (ADDR, 3),
        (ADDR, 4),
    ]
    mailbox = await store.get_mailbox(ADDR)
    assert mailbox is not None and mailbox.last_seq == 4


async def test_rewriting_is_idempotent_and_keeps_the_first_seq(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    batch = [make_message(ADDR), make_message(ADDR)]
    first = await store.store_messages(batch, NOW)
    # Replayed later, even past expiry (not yet purged): still the same message.
    for now in (NOW + HOUR, NOW + 8 * DAY):
        again = await store.store_messages(batch, now)
        assert [(r.id, r.status, r.seq) for r in again] == [
            (r.id, "existing", r.seq) for r in first
        ]
    assert len(await store.list_messages(ADDR, limit=10)) == 2
    mailbox = await store.get_mailbox(ADDR)
    assert mailbox is not None and mailbox.last_seq == 2


async def test_duplicate_ids_inside_one_batch(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    twice = make_message(ADDR)
    results = await store.store_messages([twice, make_message(ADDR), twice, twice], NOW)
    assert [r.status for r in results] == ["inserted", "inserted", "existing", "existing"]
    assert results[0].seq == results[2].seq == results[3].seq == 1
    assert results[1].seq == 2
    assert len(await store.list_messages(ADDR, limit=10)) == 2


async def test_a_tombstone_blocks_reinsertion(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    message = make_message(ADDR)
    await store.store_messages([message], NOW)
    assert await store.delete_message(ADDR, message.id)

    [again] = await store.store_messages([message], NOW + HOUR)
    assert (again.status, again.seq) == ("tombstoned", None)
    assert await store.get_message(ADDR, message.id) is None
    assert await store.list_messages(ADDR, limit=10) == []


async def test_expired_messages_are_not_written(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    at_now = make_message(ADDR, expires_at=NOW)
    past = make_message(ADDR, expires_at=NOW - DAY)
    just_after = make_message(ADDR, expires_at=NOW + MS)
    results = await store.store_messages([at_now, past, just_after], NOW)
    assert [(r.status, r.seq) for r in results] == [
        ("expired", None),
        ("expired", None),
        ("inserted", 1),
    ]
    assert await store.get_message(ADDR, at_now.id) is None
    assert await store.get_message(ADDR, past.id) is None


async def test_messages_without_a_mailbox_are_not_written(
    store: MailStore, make_message: MessageFactory
) -> None:
    message = make_message(ADDR)
    [result] = await store.store_messages([message], NOW)
    assert (result.id, result.address, result.status, result.seq) == (
        message.id,
        ADDR,
        "no_mailbox",
        None,
    )
    assert await store.get_message(ADDR, message.id) is None


async def test_mixed_batch_results_follow_batch_order(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    stored, deleted = make_message(ADDR), make_message(ADDR)
    await store.store_messages([stored, deleted], NOW)
    await store.delete_message(ADDR, deleted.id)

    batch = [
        make_message(ADDR),
        deleted,
        make_message(ADDR, expires_at=NOW),
        make_message("ghost@tmpmail.test"),
        stored,
    ]
    results = await store.store_messages(batch, NOW)
    assert [r.id for r in results] == [m.id for m in batch]
    assert [(r.status, r.seq) for r in results] == [
        ("inserted", 3),
        ("tombstoned", None),
        ("expired", None),
        ("no_mailbox", None),
        ("existing", 1),
    ]


async def test_empty_batch(store: MailStore) -> None:
    assert await store.store_messages([], NOW) == []


async def test_naive_datetimes_are_refused(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    with pytest.raises(ValueError, match="naive"):
        await store.store_messages([make_message(ADDR)], NOW.replace(tzinfo=None))
    naive = make_message(ADDR, received_at=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        await store.store_messages([make_message(ADDR), naive], NOW)
    assert await store.list_messages(ADDR, limit=10) == []  # nothing of that batch was written


# --- reading messages ---------------------------------------------------------------------------
async def test_summary_fields_round_trip(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR, created_at=NOW - DAY), NOW)
    message = make_message(
        ADDR,
        received_at=NOW - HOUR,
        sender="Zoë <zoe@example.test>",
        subject="Grüße ✉ \x00 end",
        preview="first line…",
        parse_errors=("bad header: X-Broken", "unknown charset"),
        raw=b"Subject: x\r\n\r\n\xff\xfe body",
    )
    [result] = await store.store_messages([message], NOW)
    expected = StoredMessage(
        id=message.id,
        address=ADDR,
        seq=1,
        ingest_id=message.ingest_id,
        received_at=message.received_at,
        expires_at=message.expires_at,
        size=len(message.raw),
        sender=message.sender,
        subject=message.subject,
        preview=message.preview,
        parse_errors=message.parse_errors,
        seen=False,
    )
    assert result.seq == 1
    assert await store.get_message(ADDR, message.id) == expected
    assert await store.list_messages(ADDR, limit=1) == [expected]
    assert await store.list_messages_after(ADDR, 0, limit=1) == [expected]
    assert await store.get_message(ADDR, "no-such-id") is None
    assert await store.get_raw(ADDR, "no-such-id") is None


async def test_datetimes_come_back_aware_utc_to_the_millisecond(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2026, 1, 1, 3, 4, 5, 987654, tzinfo=plus_two)
    mailbox_expires = (NOW + DAY).astimezone(plus_two).replace(microsecond=987654)
    await store.create_mailbox(
        make_mailbox(ADDR, created_at=created, expires_at=mailbox_expires), NOW
    )
    received = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=plus_two)
    expires = (NOW + DAY).astimezone(plus_two) + timedelta(microseconds=456789)
    message = make_message(ADDR, received_at=received, expires_at=expires)
    await store.store_messages([message], NOW)

    mailbox = await store.get_mailbox(ADDR)
    summary = await store.get_message(ADDR, message.id)
    assert mailbox is not None and summary is not None
    values = {
        mailbox.created_at: created.replace(microsecond=987000),
        mailbox.expires_at: mailbox_expires.replace(microsecond=987000),
        summary.received_at: received.replace(microsecond=678000),
        summary.expires_at: expires - timedelta(microseconds=789),
    }
    for got, want in values.items():
        assert got == want
        assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


async def test_isolation_between_mailboxes(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    for address in (ADDR, OTHER):
        await store.create_mailbox(make_mailbox(address), NOW)
    message = make_message(ADDR)
    await store.store_messages([message], NOW)

    assert await store.get_message(OTHER, message.id) is None
    assert await store.get_raw(OTHER, message.id) is None
    assert not await store.delete_message(OTHER, message.id)
    assert await store.list_messages(OTHER, limit=10) == []
    assert await store.list_messages_after(OTHER, 0, limit=10) == []
    # Untouched, and no tombstone was left by the refused delete.
    assert await store.get_raw(ADDR, message.id) == message.raw
    [again] = await store.store_messages([message], NOW)
    assert again.status == "existing"


async def test_newest_first_and_keyset_paging(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    await store.create_mailbox(make_mailbox(OTHER), NOW)
    await store_many(store, make_message, ADDR, 47, batch_size=10)
    await store_many(store, make_message, OTHER, 5, batch_size=5)

    newest = await store.list_messages(ADDR, limit=20)
    assert [m.seq for m in newest] == list(range(47, 27, -1))

    seen: list[int] = []
    pages = 0
    before: int | None = None
    while page := await store.list_messages(ADDR, limit=10, before_seq=before):
        pages += 1
        assert len(page) <= 10
        assert all(m.address == ADDR for m in page)
        seen += [m.seq for m in page]
        before = page[-1].seq
    assert pages == 5
    assert seen == list(range(47, 0, -1))  # every message once, newest first, no gaps


async def test_list_messages_after(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    await store_many(store, make_message, ADDR, 12, batch_size=5)

    assert [m.seq for m in await store.list_messages_after(ADDR, 0, limit=5)] == [1, 2, 3, 4, 5]
    assert [m.seq for m in await store.list_messages_after(ADDR, 9, limit=10)] == [10, 11, 12]
    assert await store.list_messages_after(ADDR, 12, limit=10) == []


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_below_one_lists_nothing(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory, limit: int
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    await store_many(store, make_message, ADDR, 3, batch_size=3)
    assert await store.list_messages(ADDR, limit=limit) == []
    assert await store.list_messages(ADDR, limit=limit, before_seq=3) == []
    assert await store.list_messages_after(ADDR, 0, limit=limit) == []


# --- raw bytes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1])
async def test_raw_round_trips_at_chunk_boundaries(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory, size: int
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    raw = random.Random(size).randbytes(size)
    message = make_message(ADDR, raw=raw)
    await store.store_messages([message], NOW)
    assert await store.get_raw(ADDR, message.id) == raw


async def test_ten_mib_of_binary_raw_round_trips(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    size = 10 * 1024 * 1024
    raw = b"\x00\xff\xfe\x80" + random.Random(10).randbytes(size - 8) + b"\r\n\x00\x00"
    message = make_message(ADDR, raw=raw)
    [result] = await store.store_messages([message], NOW)
    assert result.status == "inserted"

    summary = await store.get_message(ADDR, message.id)
    assert summary is not None and summary.size == size
    assert await store.get_raw(ADDR, message.id) == raw


# --- deleting and purging -----------------------------------------------------------------------
async def test_delete_message(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    kept, deleted = make_message(ADDR), make_message(ADDR, raw=b"x" * (CHUNK_SIZE + 10))
    await store.store_messages([kept, deleted], NOW)

    assert await store.delete_message(ADDR, deleted.id)
    assert await store.get_message(ADDR, deleted.id) is None
    assert await store.get_raw(ADDR, deleted.id) is None
    assert [m.id for m in await store.list_messages(ADDR, limit=10)] == [kept.id]
    assert not await store.delete_message(ADDR, deleted.id)
    assert not await store.delete_message(ADDR, "no-such-id")


async def test_delete_messages_removes_all_of_one_mailbox_in_batches_and_tombstones(
    store: MailStore,
    make_mailbox: MailboxFactory,
    make_message: MessageFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(f"{type(store).__module__}.DELETE_BATCH", 2)
    for address in (ADDR, OTHER):
        await store.create_mailbox(make_mailbox(address), NOW)
    mine = [make_message(ADDR, raw=b"x" * (CHUNK_SIZE + 1)) for _ in range(5)]
    theirs = make_message(OTHER)
    await store.store_messages([*mine, theirs], NOW)

    assert await store.delete_messages(ADDR) == 5
    assert await store.list_messages(ADDR, limit=10) == []
    assert all([await store.get_raw(ADDR, m.id) is None for m in mine])
    assert [m.id for m in await store.list_messages(OTHER, limit=10)] == [theirs.id]
    assert [r.status for r in await store.store_messages(mine[:2], NOW)] == ["tombstoned"] * 2
    assert await store.delete_messages(ADDR) == 0


async def test_set_seen(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    for address in (ADDR, OTHER):
        await store.create_mailbox(make_mailbox(address), NOW)
    message = make_message(ADDR)
    await store.store_messages([message], NOW)

    assert await store.set_seen(ADDR, message.id, True, now=NOW)
    stored = await store.get_message(ADDR, message.id, now=NOW)
    assert stored is not None and stored.seen
    assert [m.seen for m in await store.list_messages(ADDR, limit=5, now=NOW)] == [True]
    assert await store.set_seen(ADDR, message.id, False, now=NOW)
    stored = await store.get_message(ADDR, message.id, now=NOW)
    assert stored is not None and not stored.seen
    assert not await store.set_seen(OTHER, message.id, True, now=NOW)
    assert not await store.set_seen(ADDR, "no-such-id", True, now=NOW)
    assert not await store.set_seen(ADDR, message.id, True, now=message.expires_at)


async def test_purge_expired(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    cooled = make_mailbox(OTHER, expires_at=NOW + HOUR, purge_after=NOW + 2 * HOUR)
    await store.create_mailbox(cooled, NOW)

    short = [make_message(ADDR, expires_at=NOW + HOUR, raw=b"y" * (CHUNK_SIZE + 1)) for _ in "ab"]
    long = make_message(ADDR, expires_at=NOW + 7 * DAY)
    short_deleted = make_message(ADDR, expires_at=NOW + 2 * HOUR)
    long_deleted = make_message(ADDR, expires_at=NOW + 7 * DAY)
    await store.store_messages([*short, long, short_deleted, long_deleted], NOW)
    for message in (short_deleted, long_deleted):
        await store.delete_message(ADDR, message.id)

    assert await store.purge_expired(NOW) == PurgeCounts()
    counts = await store.purge_expired(NOW + 2 * HOUR)
    assert (counts.messages, counts.tombstones, counts.mailboxes) == (2, 1, 1)

    for message in short:
        assert await store.get_message(ADDR, message.id) is None
        assert await store.get_raw(ADDR, message.id) is None
    assert [m.id for m in await store.list_messages(ADDR, limit=10)] == [long.id]
    assert await store.get_raw(ADDR, long.id) == long.raw
    assert await store.get_mailbox(OTHER) is None
    assert await store.get_mailbox_by_token(cooled.token_hash) is None
    assert await store.get_mailbox(ADDR) is not None

    later = NOW + 3 * HOUR
    [blocked, gone] = await store.store_messages([long_deleted, short_deleted], later)
    assert blocked.status == "tombstoned"  # its tombstone lives until the message's expiry
    assert gone.status == "expired"  # its tombstone was purged, and it is expired anyway

    counts = await store.purge_expired(NOW + 2 * HOUR)
    assert (counts.messages, counts.tombstones, counts.mailboxes) == (0, 0, 0)


# --- take-over and chunk purge: one rule on both adapters (drifts found in review) --------------
async def test_a_take_over_after_a_purge_removes_leftovers_and_keeps_seqs_above_them(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    """The record was purged, but mail of its owner outlived it (a long message TTL)."""
    first = make_mailbox(ADDR, expires_at=NOW + DAY, purge_after=NOW + 2 * DAY)
    assert await store.create_mailbox(first, NOW)
    leftovers = [make_message(ADDR, expires_at=NOW + 30 * DAY) for _ in range(3)]
    old = await store.store_messages(leftovers, NOW)
    counts = await store.purge_expired(NOW + 2 * DAY)
    assert (counts.mailboxes, counts.messages) == (1, 0)
    assert await store.get_mailbox(ADDR) is None

    later = NOW + 3 * DAY
    second = make_mailbox(
        ADDR, created_at=later, expires_at=later + 15 * DAY, purge_after=later + 45 * DAY
    )
    assert await store.create_mailbox(second, later)
    assert await store.list_messages(ADDR, limit=10) == []
    for message in leftovers:
        assert await store.get_raw(ADDR, message.id) is None
    assert await raw_chunk_count(store) == 0

    fresh = make_message(ADDR, received_at=later, expires_at=later + DAY)
    [new] = await store.store_messages([fresh], later)
    assert new.status == "inserted" and new.seq is not None
    assert new.seq > max(r.seq or 0 for r in old)
    replayed = await store.store_messages(leftovers, later)
    assert {r.status for r in replayed} == {"predates_mailbox"}
    assert [m.id for m in await store.list_messages(ADDR, limit=10)] == [fresh.id]


async def test_a_take_over_removes_mail_of_the_previous_owner_with_any_seq(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    """Even a message whose seq is above the old record's counter (MongoDB once kept it)."""
    first = make_mailbox(ADDR, expires_at=NOW + DAY, purge_after=NOW + 2 * DAY)
    assert await store.create_mailbox(first, NOW)
    await store.store_messages([make_message(ADDR, expires_at=NOW + 30 * DAY)], NOW)
    later = NOW + 2 * DAY
    second = make_mailbox(ADDR, created_at=later, expires_at=later + DAY, purge_after=later + DAY)
    assert await store.create_mailbox(second, later)
    late = make_message(ADDR, received_at=later, expires_at=later + 30 * DAY)
    [stored] = await store.store_messages([late], later)
    assert stored.status == "inserted"

    third_at = later + DAY
    third = make_mailbox(ADDR, created_at=third_at, expires_at=third_at + DAY)
    assert await store.create_mailbox(third, third_at)
    assert await store.list_messages(ADDR, limit=10) == []
    assert await raw_chunk_count(store) == 0
    [again] = await store.store_messages([late], third_at)
    assert again.status == "predates_mailbox"


async def test_raw_chunks_are_purged_by_their_own_expiry(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    big = make_message(ADDR, expires_at=NOW + HOUR, raw=b"z" * (2 * CHUNK_SIZE + 1))
    kept = make_message(ADDR, expires_at=NOW + DAY)
    await store.store_messages([big, kept], NOW)
    await plant_orphan_chunk(store, "never-written", NOW + HOUR)
    assert await raw_chunk_count(store) == 3 + 1 + 1

    counts = await store.purge_expired(NOW + HOUR)
    assert (counts.messages, counts.chunks) == (1, 4)
    assert await raw_chunk_count(store) == 1
    assert await store.get_raw(ADDR, kept.id) == kept.raw


# --- the whole parse: document and attachments ------------------------------------------------
async def test_the_document_and_attachments_round_trip(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    big = random.Random(7).randbytes(CHUNK_SIZE + 1)
    files = {"a1": b"%PDF-1.4 \x00\xff", "logo": big, "empty": b""}
    message = make_message(ADDR, **parse_of("report", files, version=3))
    [result] = await store.store_messages([message], NOW)
    assert (result.status, result.seq) == ("inserted", 1)

    assert await store.get_document(ADDR, message.id) == message.document
    for attachment_id, data in files.items():
        assert await store.get_attachment(ADDR, message.id, attachment_id) == data
    assert await store.get_attachment(ADDR, message.id, "no-such-attachment") is None
    assert await store.get_raw(ADDR, message.id) == message.raw  # the raw bytes are kept too
    summary = await store.get_message(ADDR, message.id)
    assert summary is not None
    assert (summary.subject, summary.parser_version) == ("report", 3)
    assert await store.list_messages(ADDR, limit=10) == [summary]
    assert await piece_count(store, "attachments") == 1 + 2 + 1


async def test_the_document_and_attachments_are_scoped_by_mailbox(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    for address in (ADDR, OTHER):
        await store.create_mailbox(make_mailbox(address), NOW)
    message = make_message(ADDR, **parse_of("mine", {"a1": b"secret"}))
    await store.store_messages([message], NOW)
    assert await store.get_document(OTHER, message.id) is None
    assert await store.get_attachment(OTHER, message.id, "a1") is None
    assert await store.get_document(ADDR, "no-such-id") is None
    assert await store.get_attachment(ADDR, "no-such-id", "a1") is None


async def test_a_message_without_a_document(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    message = make_message(ADDR)
    await store.store_messages([message], NOW)
    assert await store.get_document(ADDR, message.id) is None
    assert await store.get_attachment(ADDR, message.id, "a1") is None
    assert await store.get_raw(ADDR, message.id) == message.raw


# --- re-parse -----------------------------------------------------------------------------------
async def test_a_newer_parser_updates_the_parse_and_keeps_the_rest(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR, created_at=NOW - DAY), NOW)
    first = make_message(ADDR, received_at=NOW - HOUR, **parse_of("v1", {"a1": b"one"}))
    neighbour = make_message(ADDR)
    [stored, _] = await store.store_messages([first, neighbour], NOW)
    await mark_seen(store, first.id)

    reparse = first.model_copy(
        update={
            **parse_of("v2", {"b1": b"two", "b2": b"three"}, version=2),
            "received_at": NOW,  # what a re-parse must not change
            "expires_at": NOW + 3 * DAY,
            "raw": b"other bytes",
        }
    )
    [updated] = await store.store_messages([reparse], NOW + MS)
    assert (updated.id, updated.status, updated.seq) == (first.id, "updated", stored.seq)

    summary = await store.get_message(ADDR, first.id)
    assert summary is not None
    assert (summary.subject, summary.preview, summary.parser_version) == ("v2", "v2 text", 2)
    assert (summary.seq, summary.seen, summary.received_at) == (stored.seq, True, NOW - HOUR)
    assert (summary.expires_at, summary.size) == (first.expires_at, len(first.raw))
    assert await store.get_raw(ADDR, first.id) == first.raw
    assert await store.get_document(ADDR, first.id) == reparse.document
    assert await store.get_attachment(ADDR, first.id, "a1") is None
    assert await store.get_attachment(ADDR, first.id, "b2") == b"three"
    assert await piece_count(store, "attachments") == 2
    mailbox = await store.get_mailbox(ADDR)
    assert mailbox is not None and mailbox.last_seq == 2  # no new seq

    # The same version again, or an older one: nothing changes.
    older = first.model_copy(update=parse_of("v0", {}, version=1))
    again = await store.store_messages([reparse, older], NOW + 2 * MS)
    assert [(r.status, r.seq) for r in again] == [("existing", stored.seq)] * 2
    assert await store.get_document(ADDR, first.id) == reparse.document


async def test_a_reparse_inside_one_batch(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    first = make_message(ADDR, **parse_of("v1", {"a1": b"one"}))
    second = first.model_copy(update=parse_of("v2", {"a2": b"two"}, version=2))
    results = await store.store_messages([first, second, first, second], NOW)
    assert [(r.status, r.seq) for r in results] == [
        ("inserted", 1),
        ("updated", 1),
        ("existing", 1),
        ("existing", 1),
    ]
    assert await store.get_document(ADDR, first.id) == second.document
    assert await store.get_attachment(ADDR, first.id, "a1") is None
    assert await store.get_attachment(ADDR, first.id, "a2") == b"two"
    summary = await store.get_message(ADDR, first.id)
    assert summary is not None and (summary.subject, summary.parser_version) == ("v2", 2)


async def test_an_expired_message_is_not_reparsed(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    first = make_message(ADDR, expires_at=NOW + HOUR, **parse_of("v1"))
    await store.store_messages([first], NOW)
    newer = first.model_copy(update=parse_of("v2", version=2))
    [result] = await store.store_messages([newer], NOW + HOUR)
    assert (result.status, result.seq) == ("existing", 1)
    assert await store.get_document(ADDR, first.id, now=NOW) == first.document


# --- sender retries stored once -----------------------------------------------------------------
async def test_a_retry_with_the_same_key_within_24_hours_is_stored_once(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    first = make_message(ADDR, dedupe_key="k1")
    retries = [
        make_message(ADDR, dedupe_key="k1", received_at=NOW + HOUR),
        make_message(ADDR, dedupe_key="k1", received_at=NOW + DEDUPE_WINDOW),
    ]
    [stored] = await store.store_messages([first], NOW)
    results = await store.store_messages(retries, NOW + HOUR)
    assert [(r.id, r.status, r.seq, r.duplicate_of) for r in results] == [
        (retry.id, "duplicate", stored.seq, first.id) for retry in retries
    ]
    assert [m.id for m in await store.list_messages(ADDR, limit=10)] == [first.id]
    assert await store.get_message(ADDR, retries[0].id) is None
    mailbox = await store.get_mailbox(ADDR)
    assert mailbox is not None and mailbox.last_seq == 1

    # A replay deduplicates the same way.
    replay = await store.store_messages([first, *retries], NOW + 2 * HOUR)
    assert [(r.status, r.seq) for r in replay] == [("existing", stored.seq)] + [
        ("duplicate", stored.seq)
    ] * 2


async def test_a_copy_past_24_hours_is_new_and_takes_the_key(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    first = make_message(ADDR, dedupe_key="k1")
    late = make_message(ADDR, dedupe_key="k1", received_at=NOW + DEDUPE_WINDOW + MS)
    later = make_message(ADDR, dedupe_key="k1", received_at=NOW + DEDUPE_WINDOW + 2 * HOUR)
    results = await store.store_messages([first], NOW)
    results += await store.store_messages([late], NOW + DEDUPE_WINDOW + MS)
    results += await store.store_messages([later], NOW + DEDUPE_WINDOW + 2 * HOUR)
    assert [(r.status, r.seq, r.duplicate_of) for r in results] == [
        ("inserted", 1, None),
        ("inserted", 2, None),
        ("duplicate", 2, late.id),  # the key now names the later copy
    ]
    assert await piece_count(store, "keys") == 1


async def test_keys_are_per_mailbox_and_mail_without_one_is_never_deduplicated(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    for address in (ADDR, OTHER):
        await store.create_mailbox(make_mailbox(address), NOW)
    batch = [
        make_message(ADDR, dedupe_key="k1"),
        make_message(OTHER, dedupe_key="k1"),
        make_message(ADDR),
        make_message(ADDR),
        make_message(ADDR, dedupe_key="k2"),
    ]
    results = await store.store_messages(batch, NOW)
    assert [r.status for r in results] == ["inserted"] * 5
    assert await piece_count(store, "keys") == 3


async def test_a_retry_inside_the_same_batch(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    first, other = make_message(ADDR, dedupe_key="k1"), make_message(ADDR)
    retry = make_message(ADDR, dedupe_key="k1", received_at=NOW + MS)
    results = await store.store_messages([first, other, retry, first], NOW)
    assert [(r.status, r.seq, r.duplicate_of) for r in results] == [
        ("inserted", 1, None),
        ("inserted", 2, None),
        ("duplicate", 1, first.id),
        ("existing", 1, None),
    ]


async def test_a_retry_of_a_deleted_mail_stays_deleted(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    first = make_message(ADDR, dedupe_key="k1")
    await store.store_messages([first], NOW)
    assert await store.delete_message(ADDR, first.id)
    retry = make_message(ADDR, dedupe_key="k1", received_at=NOW + HOUR)
    [result] = await store.store_messages([retry], NOW + HOUR)
    assert (result.status, result.seq, result.duplicate_of) == ("duplicate", None, first.id)
    assert await store.list_messages(ADDR, limit=10) == []


async def test_a_take_over_removes_the_previous_owners_parses_and_keys(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    first = make_mailbox(ADDR, expires_at=NOW + HOUR, purge_after=NOW + 2 * HOUR)
    assert await store.create_mailbox(first, NOW)
    old = make_message(ADDR, dedupe_key="k1", **parse_of("old", {"a1": b"x"}))
    await store.store_messages([old], NOW)
    later = NOW + 2 * HOUR
    second = make_mailbox(ADDR, created_at=later, expires_at=later + DAY)
    assert await store.create_mailbox(second, later)
    for kind in ("raw", "documents", "attachments", "keys"):
        assert await piece_count(store, kind) == 0, kind

    fresh = make_message(ADDR, dedupe_key="k1", received_at=later)
    [result] = await store.store_messages([fresh], later)
    assert result.status == "inserted"


# --- expired mail is invisible at once ----------------------------------------------------------
async def test_expired_mail_is_invisible_to_every_read_before_the_purge(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR, created_at=NOW - DAY), NOW - DAY)
    short = make_message(ADDR, expires_at=NOW + HOUR, **parse_of("short", {"a1": b"x"}))
    long = make_message(ADDR, expires_at=NOW + DAY)
    await store.store_messages([short, long], NOW)

    async def visible(now: datetime | None) -> list[object]:
        return [
            [m.id for m in await store.list_messages(ADDR, limit=10, now=now)],
            [m.id for m in await store.list_messages(ADDR, limit=10, before_seq=3, now=now)],
            [m.id for m in await store.list_messages_after(ADDR, 0, limit=10, now=now)],
            await store.get_message(ADDR, short.id, now=now) is not None,
            await store.get_raw(ADDR, short.id, now=now) is not None,
            await store.get_document(ADDR, short.id, now=now) is not None,
            await store.get_attachment(ADDR, short.id, "a1", now=now) is not None,
        ]

    both = [long.id, short.id]
    assert await visible(NOW + HOUR - MS) == [both, both, both[::-1], True, True, True, True]
    only_long = [long.id]
    assert await visible(NOW + HOUR) == [only_long] * 3 + [False] * 4

    # Without ``now``, reads use the current time.
    old = make_message(
        ADDR, received_at=NOW - 3 * HOUR, expires_at=NOW - 2 * HOUR, **parse_of("old", {"a1": b""})
    )
    [stored] = await store.store_messages([old], NOW - 3 * HOUR)
    assert stored.status == "inserted"
    assert old.id not in [m.id for m in await store.list_messages(ADDR, limit=10)]
    assert await store.get_message(ADDR, old.id) is None
    assert await store.get_document(ADDR, old.id) is None
    assert await store.get_attachment(ADDR, old.id, "a1") is None
    assert await store.get_message(ADDR, old.id, now=NOW - 3 * HOUR) is not None


# --- deleting and purging the whole parse -------------------------------------------------------
async def test_delete_removes_the_document_and_attachments(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    message = make_message(ADDR, **parse_of("bye", {"a1": b"x" * (CHUNK_SIZE + 1)}))
    kept = make_message(ADDR, **parse_of("kept", {"a1": b"y"}))
    await store.store_messages([message, kept], NOW)
    assert await store.delete_message(ADDR, message.id)
    assert await store.get_document(ADDR, message.id) is None
    assert await store.get_attachment(ADDR, message.id, "a1") is None
    assert (await piece_count(store, "documents"), await piece_count(store, "attachments")) == (
        1,
        1,
    )
    [again] = await store.store_messages([message], NOW + HOUR)
    assert again.status == "tombstoned"


async def test_attachments_documents_and_keys_are_purged_by_their_own_expiry(
    store: MailStore, make_mailbox: MailboxFactory, make_message: MessageFactory
) -> None:
    await store.create_mailbox(make_mailbox(ADDR), NOW)
    short = make_message(
        ADDR, expires_at=NOW + HOUR, dedupe_key="k1", **parse_of("short", {"a": b"1", "b": b"2"})
    )
    kept = make_message(ADDR, expires_at=NOW + DAY, dedupe_key="k2", **parse_of("kept", {"a": b""}))
    await store.store_messages([short, kept], NOW)
    await plant_orphan_attachment(store, "never-written", NOW + HOUR)

    counts = await store.purge_expired(NOW + HOUR)
    assert (counts.messages, counts.document_chunks, counts.attachment_chunks) == (1, 1, 3)
    assert counts.dedupe_keys == 0  # a key outlives its copy by the window
    assert (await piece_count(store, "documents"), await piece_count(store, "attachments")) == (
        1,
        1,
    )
    assert await store.get_attachment(ADDR, kept.id, "a") == b""

    counts = await store.purge_expired(NOW + HOUR + DEDUPE_WINDOW)
    assert counts.dedupe_keys == 1
    assert await piece_count(store, "keys") == 1


async def test_purge_reports_the_addresses_it_removed_a_bounded_number_at_a_time(
    store: MailStore, make_mailbox: MailboxFactory
) -> None:
    gone = [f"gone{i}@tmpmail.test" for i in range(5)]
    for address in gone:
        await store.create_mailbox(
            make_mailbox(address, expires_at=NOW + HOUR, purge_after=NOW + 2 * HOUR), NOW
        )
    await store.create_mailbox(make_mailbox(ADDR), NOW)

    assert (await store.purge_expired(NOW + 2 * HOUR - MS)).addresses == ()
    first = await store.purge_expired(NOW + 2 * HOUR, mailbox_limit=3)
    rest = await store.purge_expired(NOW + 2 * HOUR, mailbox_limit=3)
    assert (first.mailboxes, len(first.addresses), rest.mailboxes) == (3, 3, 2)
    assert sorted(first.addresses + rest.addresses) == gone
    assert await store.purge_expired(NOW + 2 * HOUR) == PurgeCounts()
    assert await store.get_mailbox(ADDR) is not None
