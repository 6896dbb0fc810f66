"""The mailbox table without a broker: its store settings, the look-up, lifecycle records.

The look-up is tested on Faust's own stores (RocksDB in a temporary directory, and the
in-memory one), written the way Faust writes them inside an agent; ``apply_lifecycle``
on a plain dict.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.streams import _current_event

from schemas.keys import key_bytes, partition_for
from schemas.records import MailboxLifecycleEvent, RecordError
from schemas.settings import Settings, load_settings
from schemas.topics import MAILBOX_LIFECYCLE_TOPIC, MAILBOX_TABLE
from store import Mailbox
from streams.service import MailboxView
from streams.table import (
    BLOCK_CACHE_BYTES,
    MAX_OPEN_FILES,
    TOMBSTONE_BATCH,
    WRITE_BUFFER_BYTES,
    WRITE_BUFFERS,
    MailboxTableLookup,
    apply_lifecycle,
    forget_purged_mailboxes,
    partition_db_path,
    table_dir,
    table_memory_bound,
    table_store_options,
    table_store_settings,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PARTITIONS = 6
ADDRESSES = [f"user{i}@tmpmail.test" for i in range(40)]


def lifecycle(
    address: str, kind: str = "created", *, expires_at: datetime = NOW + timedelta(days=15)
) -> bytes:
    return MailboxLifecycleEvent(
        kind=kind,  # type: ignore[arg-type]
        address=address,
        mailbox_id=f"id-{address}",
        created_at=expires_at - timedelta(days=15),
        expires_at=expires_at,
        at=NOW,
    ).to_bytes()


class FakeStore:
    """Only ``get_mailbox``, and who asked."""

    def __init__(self, *mailboxes: Mailbox) -> None:
        self.mailboxes = {m.address: m for m in mailboxes}
        self.asked: list[str] = []

    async def get_mailbox(self, address: str) -> Mailbox | None:
        self.asked.append(address)
        return self.mailboxes.get(address)


def stored_mailbox(address: str, expires_at: datetime) -> Mailbox:
    return Mailbox(
        id="new",
        address=address,
        token_hash="t",
        created_at=expires_at - timedelta(days=15),
        expires_at=expires_at,
        purge_after=expires_at + timedelta(days=30),
    )


class FakeTable:
    """What the look-up reads of a Faust table: ``data``, its store."""

    def __init__(self, entries: dict[bytes, bytes] | None = None) -> None:
        self.data = dict(entries or {})


def lookup_of(table: Any, store: FakeStore) -> MailboxTableLookup:
    return MailboxTableLookup(table, store, partitions=PARTITIONS, clock=lambda: NOW)  # type: ignore[arg-type]


class _Event:
    """Enough of a Faust event for a store write: the partition of its message."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def write_as_agent(store: Any, key: bytes, value: bytes, partition: int) -> None:
    """Write ``store[key]`` as Faust does inside an agent whose event is on ``partition``."""
    event = _Event(partition)
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        store[key] = value
    finally:
        _current_event.reset(token)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(state_dir=tmp_path / "state", topic_partitions=PARTITIONS)


@pytest.fixture
def rocksdb_table(settings: Settings) -> Iterator[Any]:
    """The worker's table as ``build_app`` declares it, on RocksDB, never started."""
    app = faust.App("tmpmail-streams-test", **table_store_settings(settings), web_enabled=False)
    table: Any = app.Table(
        MAILBOX_TABLE,
        default=None,
        partitions=PARTITIONS,
        key_type=bytes,
        value_type=bytes,
        options=table_store_options(),
    )
    yield table
    table.data._dbs.clear()  # Faust's own way to close them (RocksDB closes when freed)


# --- the store's settings -----------------------------------------------------------------
def test_rocksdb_gets_the_bounded_options(rocksdb_table: Any) -> None:
    options = rocksdb_table.data.rocksdb_options
    assert options.use_rocksdict, "faust-streaming[rocksdict] is installed"
    assert options.block_cache_size == BLOCK_CACHE_BYTES
    assert options.write_buffer_size == WRITE_BUFFER_BYTES
    assert options.max_write_buffer_number == WRITE_BUFFERS
    assert options.max_open_files == MAX_OPEN_FILES


def test_memory_bound_is_well_under_50_mib(settings: Settings) -> None:
    assert table_memory_bound(settings) == PARTITIONS * (4 + 2 * 1) * 1024 * 1024
    assert table_memory_bound(settings) < 50 * 1024 * 1024


def test_the_databases_are_where_table_dir_says(settings: Settings, rocksdb_table: Any) -> None:
    assert rocksdb_table.app.conf.tabledir == table_dir(settings)
    assert table_dir(settings) == settings.state_dir / "streams" / "v1" / "tables"
    key = key_bytes(ADDRESSES[0])
    write_as_agent(rocksdb_table.data, key, lifecycle(ADDRESSES[0]), 3)
    assert partition_db_path(settings, 3).is_dir()
    assert sorted(p.name for p in table_dir(settings).iterdir()) == [
        f"{MAILBOX_TABLE}-3.db",
        f"{MAILBOX_TABLE}-backups",
    ]


# --- partitions ------------------------------------------------------------------------
def test_partition_is_the_one_faust_and_kafka_use() -> None:
    partitioner = DefaultPartitioner()
    every = list(range(PARTITIONS))
    for address in ADDRESSES:
        key = key_bytes(address)
        assert partition_for(key, PARTITIONS) == partitioner(key, every, every)


async def test_lookup_reads_the_keys_own_partition_only(rocksdb_table: Any) -> None:
    store = FakeStore()
    lookup = lookup_of(rocksdb_table, store)
    for address in ADDRESSES:
        key = key_bytes(address)
        write_as_agent(rocksdb_table.data, key, lifecycle(address), partition_for(key, PARTITIONS))
    assert set(rocksdb_table.data._dbs) == set(range(PARTITIONS)), "40 keys reach every one"
    for address in ADDRESSES:
        assert await lookup.find(address) == MailboxView(address, NOW + timedelta(days=15))
    assert store.asked == []

    # An entry in another partition's database is not this key's: a miss, so the store.
    stray = "stray@tmpmail.test"
    key = key_bytes(stray)
    write_as_agent(rocksdb_table.data, key, lifecycle(stray), partition_for(key, PARTITIONS) + 1)
    assert rocksdb_table.data[key] == lifecycle(stray)  # Faust's scan of every partition finds it
    assert lookup.entry(stray) is None
    assert await lookup.find(stray) is None
    assert store.asked == [stray]


async def test_a_partition_not_assigned_here_reads_as_a_miss(rocksdb_table: Any) -> None:
    address = ADDRESSES[0]
    key = key_bytes(address)
    partition = partition_for(key, PARTITIONS)
    write_as_agent(rocksdb_table.data, key, lifecycle(address), partition)
    store = FakeStore()
    lookup = lookup_of(rocksdb_table, store)
    rocksdb_table.data._dbs.pop(partition)  # revoked, as Faust does on a rebalance
    assert await lookup.find(address) is None
    assert store.asked == [address]
    assert partition not in rocksdb_table.data._dbs, "the look-up opens no database"


async def test_lookup_on_fausts_memory_store() -> None:
    app = faust.App("tmpmail-streams-test", store="memory://", web_enabled=False)
    table = app.Table(MAILBOX_TABLE, default=None, partitions=PARTITIONS, key_type=bytes)
    address = ADDRESSES[1]
    table.data[key_bytes(address)] = lifecycle(address)
    store = FakeStore()
    assert await lookup_of(table, store).find(address) == MailboxView(
        address, NOW + timedelta(days=15)
    )
    assert store.asked == []


# --- fallbacks to the store ---------------------------------------------------------------
ADDRESS = "alice@tmpmail.test"
TAKEN_OVER = stored_mailbox(ADDRESS, NOW + timedelta(days=15))


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(None, id="missing"),
        pytest.param(lifecycle(ADDRESS, expires_at=NOW - timedelta(days=40)), id="expired"),
        pytest.param(lifecycle(ADDRESS, expires_at=NOW), id="expires-now"),
        pytest.param(b"{not json", id="unreadable"),
        pytest.param(b'{"v": 1, "kind": "created"}', id="incomplete"),
        pytest.param(lifecycle(ADDRESS, "deleted"), id="deleted"),
    ],
)
async def test_no_live_entry_asks_the_store(entry: bytes | None) -> None:
    table = FakeTable({key_bytes(ADDRESS): entry} if entry is not None else {})
    store = FakeStore(TAKEN_OVER)
    assert await lookup_of(table, store).find(ADDRESS) == MailboxView(
        ADDRESS, TAKEN_OVER.expires_at
    )
    assert store.asked == [ADDRESS]


async def test_unknown_to_both_is_none() -> None:
    store = FakeStore()
    assert await lookup_of(FakeTable(), store).find(ADDRESS) is None
    assert store.asked == [ADDRESS]


async def test_a_live_entry_does_not_ask_the_store() -> None:
    expires = NOW + timedelta(seconds=1)
    table = FakeTable({key_bytes(ADDRESS): lifecycle(ADDRESS, expires_at=expires)})
    store = FakeStore(TAKEN_OVER)
    assert await lookup_of(table, store).find("Alice+tag@TMPMAIL.test") == MailboxView(
        ADDRESS, expires
    )
    assert store.asked == []


# --- apply_lifecycle ----------------------------------------------------------------------
KEY = key_bytes(ADDRESS)


def test_created_then_extended_then_deleted() -> None:
    table: dict[bytes, bytes] = {}
    created = lifecycle(ADDRESS)
    assert apply_lifecycle(table, KEY, created, now=NOW) == "stored"
    assert table == {KEY: created}
    extended = lifecycle(ADDRESS, "extended", expires_at=NOW + timedelta(days=30))
    assert apply_lifecycle(table, KEY, extended, now=NOW) == "stored"
    assert table == {KEY: extended}
    assert apply_lifecycle(table, KEY, lifecycle(ADDRESS, "deleted"), now=NOW) == "removed"
    assert table == {}
    assert apply_lifecycle(table, KEY, lifecycle(ADDRESS, "deleted"), now=NOW) == "removed"


def test_the_entry_is_keyed_by_the_normalised_address() -> None:
    table: dict[bytes, bytes] = {}
    value = lifecycle("Alice+x@TMPMAIL.Test")
    apply_lifecycle(table, b"whatever the producer keyed", value, now=NOW)
    assert table == {KEY: value}


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(lifecycle(ADDRESS, expires_at=NOW - timedelta(days=45)), id="expired"),
        pytest.param(b"garbage", id="unreadable"),
        pytest.param(None, id="absent"),
    ],
)
def test_a_tombstone_removes_the_entry(entry: bytes | None) -> None:
    other = key_bytes("bob@tmpmail.test")
    table = {other: lifecycle("bob@tmpmail.test")}
    if entry is not None:
        table[KEY] = entry
    assert apply_lifecycle(table, KEY, None, now=NOW) == "removed"
    assert table == {other: lifecycle("bob@tmpmail.test")}


def test_a_late_tombstone_keeps_the_address_created_again() -> None:
    # The purge removed the old mailbox, the address was created again, and only then
    # did the purge's tombstone arrive: the new mailbox stays.
    table: dict[bytes, bytes] = {}
    recreated = lifecycle(ADDRESS, expires_at=NOW + timedelta(days=15))
    apply_lifecycle(table, KEY, recreated, now=NOW)
    assert apply_lifecycle(table, KEY, None, now=NOW) == "kept"
    assert table == {KEY: recreated}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param(None, None, id="tombstone-without-key"),
        pytest.param(KEY, b"{broken", id="not-json"),
        pytest.param(KEY, b'{"v": 2, "kind": "created"}', id="other-version"),
        pytest.param(KEY, lifecycle("nobody"), id="bad-address"),
    ],
)
def test_unreadable_records_raise_and_change_nothing(
    key: bytes | None, value: bytes | None
) -> None:
    table = {KEY: lifecycle(ADDRESS)}
    with pytest.raises(RecordError):
        apply_lifecycle(table, key, value, now=NOW)
    assert table == {KEY: lifecycle(ADDRESS)}


# --- tombstones for purged mailboxes --------------------------------------------------------
class FakeProducer:
    def __init__(self) -> None:
        self.tombstones: list[tuple[str, bytes]] = []

    async def publish_tombstone(self, topic: Any, key: bytes) -> None:
        self.tombstones.append((topic.name, key))


async def test_forget_purged_mailboxes_publishes_one_tombstone_each() -> None:
    producer = FakeProducer()
    addresses = [f"gone{i}@tmpmail.test" for i in range(TOMBSTONE_BATCH + 7)]
    assert await forget_purged_mailboxes(producer, addresses) == len(addresses)  # type: ignore[arg-type]
    assert producer.tombstones == [(MAILBOX_LIFECYCLE_TOPIC, key_bytes(a)) for a in addresses]
    assert await forget_purged_mailboxes(producer, []) == 0  # type: ignore[arg-type]
