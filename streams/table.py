"""The mailbox table of the streams worker: where it is kept, how lifecycle records change
it, and how a raw-mail batch reads it.

**Store.** ``mailboxes_by_address`` lives in Faust's RocksDB store (rocksdict): one
database per partition, on disk. Each database has a small block cache and small write
buffers (:func:`table_store_options`), so the table costs a few MiB per partition
whatever the number of mailboxes (:func:`table_memory_bound`), and a restart reads the
changelog only past the offset each database has persisted, instead of replaying every
mailbox into memory.

**Layout.** Faust's ``datadir`` is ``<state>/streams`` (:mod:`streams.state`, which also
wipes it for a new Kafka cluster). The table's files are in :func:`table_dir`,
``<state>/streams/v1/tables/``:

* ``mailboxes_by_address-<partition>.db``: one RocksDB database per partition. The
  running worker holds a lock on each; no other process may open them;
* ``mailboxes_by_address-backups``: made by Faust, left empty (rocksdict has no backups).

A tool that replays raw mail beside a running worker must not open them: it looks
mailboxes up in the store alone (:class:`StoreMailboxLookup`).

**Look-up.** :class:`MailboxTableLookup` serves ``store_raw_batch``, which runs under
``noack_take``, where Faust has no current event: its ``Table.get`` would not know the
key's partition and would probe every partition's database. The look-up computes the
partition with our murmur2 (:func:`schemas.keys.partition_for`, the table is
co-partitioned with raw mail) and reads only that partition's database. A missing,
unreadable or expired entry is asked of the store: the store holds a mailbox created
moments ago, or an address created again after a purge.

**Lifecycle.** :func:`apply_lifecycle` is the body of the lifecycle agent: ``created``
and ``extended`` store the record, ``deleted`` and a tombstone remove it.
:func:`forget_purged_mailboxes` publishes those tombstones for the mailboxes a purge
removed, so the table (and the compacted topic) forget them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from faust.stores.rocksdb import Store as RocksDBStore

from bus import AsyncProducer
from schemas.keys import key_bytes, partition_for
from schemas.records import MailboxLifecycleEvent, RecordError, utcnow
from schemas.settings import Settings
from schemas.topics import MAILBOX_TABLE, mailbox_lifecycle_topic
from store import MailStore
from streams.service import MailboxView, mailbox_view
from streams.state import streams_state_dir

log = logging.getLogger("tmpmail.streams")

MIB = 1024 * 1024

#: Faust's RocksDB store; with python-rocksdb absent, Faust drives it through rocksdict.
TABLE_STORE_URL = "rocksdb://"

# RocksDB's memory, per partition database (Faust's defaults: a 2 GiB block cache and
# three 64 MiB write buffers). The cache holds recently read blocks; the write buffers
# hold what was written since the last flush to disk.
BLOCK_CACHE_BYTES = 4 * MIB
WRITE_BUFFER_BYTES = 1 * MIB
WRITE_BUFFERS = 2
#: Open files per database (Faust's default is 90% of the process's limit).
MAX_OPEN_FILES = 64

#: Faust's ``App(version=...)``, which names the ``v1`` directory of :func:`table_dir`.
FAUST_APP_VERSION = 1

#: Tombstones in flight at once when a purge has removed many mailboxes.
TOMBSTONE_BATCH = 500

LifecycleOutcome = Literal["stored", "removed", "kept"]


# --- the store ------------------------------------------------------------------------
def table_store_settings(settings: Settings, index: int = 0) -> dict[str, Any]:
    """The Faust app kwargs for the table store of worker ``index``: RocksDB, under its
    :func:`~streams.state.streams_state_dir`.

    Faust 0.15.x has no app setting for RocksDB's options; they are the table's
    ``options=`` (:func:`table_store_options`).
    """
    return {"store": TABLE_STORE_URL, "datadir": str(streams_state_dir(settings, index))}


def table_store_options() -> dict[str, int]:
    """``app.Table(..., options=...)``: Faust 0.15.x opens each partition's database with
    ``RocksDBOptions(**options)``. A new dict each call: Faust pops keys from it."""
    return {
        "block_cache_size": BLOCK_CACHE_BYTES,
        "write_buffer_size": WRITE_BUFFER_BYTES,
        "max_write_buffer_number": WRITE_BUFFERS,
        "max_open_files": MAX_OPEN_FILES,
    }


def table_memory_bound(settings: Settings) -> int:
    """The most RocksDB's caches and write buffers hold for the table, in bytes (index and
    filter blocks, a few bytes per key, come on top)."""
    per_partition = BLOCK_CACHE_BYTES + WRITE_BUFFERS * WRITE_BUFFER_BYTES
    return settings.topic_partitions * per_partition


def table_dir(settings: Settings, index: int = 0) -> Path:
    """Where worker ``index``'s table databases are: ``<state>/streams/v1/tables`` for
    worker 0 (Faust's ``tabledir``, under ``datadir``). Only that worker may open them."""
    return streams_state_dir(settings, index) / f"v{FAUST_APP_VERSION}" / "tables"


def partition_db_path(settings: Settings, partition: int, index: int = 0) -> Path:
    """One partition's database: ``<table_dir>/mailboxes_by_address-<partition>.db``."""
    return table_dir(settings, index) / f"{MAILBOX_TABLE}-{partition}.db"


# --- reading ----------------------------------------------------------------------------
def table_view(value: bytes | None, now: datetime) -> MailboxView | None:
    """The mailbox a table entry vouches for, or ``None`` when the store must be asked:
    no entry, an entry that cannot be read, a deleted one, or one expired by ``now``."""
    if value is None:
        return None
    try:
        event = MailboxLifecycleEvent.from_bytes(value)
    except RecordError as exc:
        log.warning("unreadable table entry (%s); asking the store", exc)
        return None
    view = mailbox_view(event)
    if view is None or view.expires_at <= now:
        return None
    return view


PartitionRead = Callable[[int, bytes], bytes | None]


def partition_reader(table: Any) -> PartitionRead:
    """How to read one key from one partition of ``table``'s store.

    RocksDB: the database Faust has open for that partition (it opens one for each
    partition assigned here, and closes it when the partition is revoked); a partition
    without one is not ours, and reads as a miss. Faust 0.15.x has no public accessor
    for it; this reads ``Store._dbs``, the map its ``_db_for_partition`` fills, and not
    ``_db_for_partition`` itself, which would open (and create) a database for any
    partition. Keys and values are stored as they are (``bytes`` key and value types:
    Faust's raw codec).

    Any other store (the in-memory one of tests) is one mapping for every partition.
    """
    store = table.data
    if isinstance(store, RocksDBStore):

        def read_rocksdb(partition: int, key: bytes) -> bytes | None:
            db = store._dbs.get(partition)
            if db is None:
                return None
            value: bytes | None = db.get(key)
            return value

        return read_rocksdb

    def read_mapping(_partition: int, key: bytes) -> bytes | None:
        value: bytes | None = store.get(key)
        return value

    return read_mapping


class StoreMailboxLookup:
    """The mailbox as the store has it. The table's fallback, and the whole look-up of a
    tool that must not open the worker's table (a replay)."""

    def __init__(self, store: MailStore) -> None:
        self._store = store

    async def find(self, address: str) -> MailboxView | None:
        mailbox = await self._store.get_mailbox(address)
        if mailbox is None:
            return None
        return MailboxView(address=mailbox.address, expires_at=mailbox.expires_at)


class MailboxTableLookup:
    """Mailbox look-up: the table's entry, read from the key's own partition; when the
    table has no live entry (missing, unreadable, deleted, expired), the store.

    The store fallback also closes the race between creating an address (store, then the
    lifecycle topic) and its first mail arriving before the table has learnt it.
    """

    def __init__(
        self,
        table: Any,
        store: MailStore,
        *,
        partitions: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._table = table
        self._read: PartitionRead | None = None  # bound at the first look-up, once started
        self._partitions = partitions
        self._fallback = StoreMailboxLookup(store)
        self._clock = clock

    def entry(self, address: str) -> bytes | None:
        """The table's raw entry for ``address``, from its partition's database only."""
        if self._read is None:
            self._read = partition_reader(self._table)
        key = key_bytes(address)
        return self._read(partition_for(key, self._partitions), key)

    async def find(self, address: str) -> MailboxView | None:
        view = table_view(self.entry(address), self._clock())
        if view is not None:
            return view
        return await self._fallback.find(address)


# --- writing ----------------------------------------------------------------------------
def apply_lifecycle(
    table: MutableMapping[bytes, bytes],
    key: bytes | None,
    value: bytes | None,
    *,
    now: datetime,
) -> LifecycleOutcome:
    """Apply one record of ``tmpmail.mailbox-lifecycle.v1`` to the table.

    * ``created``, ``extended``: the record becomes the entry of its address;
    * ``deleted``: the address has no entry;
    * a tombstone (``value`` is ``None``; a purge publishes one for each mailbox it
      removed): the Kafka ``key`` has no entry, unless that entry is a live mailbox (it
      expires after ``now``). A purge removes only mailboxes long expired, so a live entry
      is the address created again after the purge, and the tombstone came after it.

    Raises :class:`RecordError` for a record that cannot be read: the agent logs it and
    goes on. Outside tests, ``table`` is the Faust table, written inside the agent, whose
    current event gives the partition.
    """
    if value is None:
        if key is None:
            raise RecordError("lifecycle tombstone without a key")
        if table_view(table.get(key), now) is not None:
            return "kept"
        table.pop(key, None)
        return "removed"
    change = MailboxLifecycleEvent.from_bytes(value)
    try:
        address_key = key_bytes(change.address)
    except ValueError as exc:
        raise RecordError(f"MailboxLifecycleEvent: {exc}") from None
    if change.kind == "deleted":
        table.pop(address_key, None)
        return "removed"
    table[address_key] = value
    return "stored"


async def forget_purged_mailboxes(producer: AsyncProducer, addresses: Sequence[str]) -> int:
    """Publish a tombstone on the lifecycle topic for each purged address and wait for the
    acks; return how many. The table agent removes their entries, and compaction their
    records. A tombstone that is lost leaves an expired entry, which look-ups pass by."""
    published = 0
    for start in range(0, len(addresses), TOMBSTONE_BATCH):
        batch = addresses[start : start + TOMBSTONE_BATCH]
        await asyncio.gather(
            *(
                producer.publish_tombstone(mailbox_lifecycle_topic, key_bytes(address))
                for address in batch
            )
        )
        published += len(batch)
    return published
