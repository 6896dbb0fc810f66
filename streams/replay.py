"""``tmpmail replay``: read raw mail again from Kafka and reprocess it into the store.

It runs a consumer of its own (assigned partitions, no group, nothing committed), so the
live worker goes on undisturbed; it never opens the worker's table (RocksDB locks its
directory): recipients are looked up in the store. It reads from where it is told up to
the end each partition had when it started, in batches, through the same
:func:`streams.service.store_raw_batch` as the worker (its two halves, so that the
next batch is parsed while the store writes this one):

* a message not stored yet is stored (and announced live);
* one stored by an older parser version is parsed again and updated, keeping its
  sequence number and its ``seen`` mark (the store's rule);
* one stored by this parser is unchanged; a deleted one stays deleted (its tombstone);
  a previous owner's mail never enters a new owner's mailbox (``predates_mailbox``).

So running it twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from bus import AsyncProducer, client_config, producer_config
from schemas.keys import key_bytes, partition_for
from schemas.records import utcnow
from schemas.settings import Settings
from schemas.topics import RAW_MAIL_TOPIC
from store import MailStore, create_store
from streams.service import (
    BatchOutcome,
    PreparedBatch,
    RawRecord,
    prepare_raw_batch,
    publish_outcome,
    write_prepared,
)
from streams.table import StoreMailboxLookup

log = logging.getLogger("tmpmail.replay")

BATCH = 500
POLL_S = 1.0
#: The replay process's GIL switch interval (Python's default is 5 ms). The store's writer
#: thread gives up the GIL around every SQLite statement, and while the parser's thread
#: runs pure Python it waited up to the whole interval to get it back; at 1 ms a replay
#: into an empty store read 1,878 to 2,117 records/s against 1,713/s (bench.replay).
SWITCH_INTERVAL_S = 0.001
PROGRESS_EVERY_S = 0.5


class ReplayError(RuntimeError):
    """The replay cannot start (bad arguments, unknown partition, Kafka unreachable)."""


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """Where to start: the beginning, a time, or one partition's offset; and a filter."""

    from_beginning: bool = False
    since: datetime | None = None
    partition: int | None = None
    offset: int | None = None
    mailbox: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        starts = sum([self.from_beginning, self.since is not None, self.partition is not None])
        if starts != 1:
            raise ReplayError("give one of --from-beginning, --since or --partition/--offset")
        if (self.partition is None) != (self.offset is None):
            raise ReplayError("--partition and --offset go together")
        if self.since is not None and self.since.tzinfo is None:
            raise ReplayError("--since needs a time zone (e.g. 2026-12-01T10:00:00Z)")


@dataclass(slots=True)
class ReplayCounts:
    """What the replay did, for its progress line and summary."""

    read: int = 0
    skipped: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    errors: int = 0

    def add(self, outcome: BatchOutcome) -> None:
        for name, count in outcome.counts.items():
            if not name.startswith("dropped:"):
                self.statuses[name] += count
        for _key, dropped in outcome.dropped:
            self.dropped[dropped.reason] += 1

    def line(self, total: int) -> str:
        done = self.read + self.skipped
        share = f" ({100 * done // total}%)" if total else ""
        s = self.statuses
        return (
            f"replay: {done:,}/{total:,} records{share}; new {s['inserted']:,}, "
            f"re-parsed {s['updated']:,}, unchanged {s['existing']:,}, "
            f"dropped {sum(self.dropped.values()):,}, errors {self.errors:,}"
        )

    def summary(self) -> str:
        s = self.statuses
        lines = [
            f"read {self.read:,} records (skipped {self.skipped:,} of other mailboxes)",
            f"  new (stored now)       {s['inserted']:,}",
            f"  re-parsed (updated)    {s['updated']:,}",
            f"  unchanged              {s['existing'] + s['duplicate']:,}",
            f"  deleted, kept deleted  {s['tombstoned']:,}",
            f"  expired                {s['expired']:,}",
        ]
        for reason, count in sorted(self.dropped.items()):
            lines.append(f"  dropped: {reason:<14} {count:,}")
        lines.append(f"  errors                 {self.errors:,}")
        return "\n".join(lines)


def start_positions(
    consumer: Consumer, spec: ReplaySpec, partitions: int
) -> tuple[list[TopicPartition], dict[int, int]]:
    """The partitions to read with their start offsets, and each one's end (exclusive)."""
    wanted = list(range(partitions))
    if spec.partition is not None:
        if not 0 <= spec.partition < partitions:
            raise ReplayError(f"{RAW_MAIL_TOPIC} has partitions 0..{partitions - 1}")
        wanted = [spec.partition]
    elif spec.mailbox is not None:
        wanted = [partition_for(key_bytes(spec.mailbox), partitions)]
    ends: dict[int, int] = {}
    starts: list[TopicPartition] = []
    for partition in wanted:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(RAW_MAIL_TOPIC, partition), timeout=10
        )
        ends[partition] = high
        if spec.offset is not None:
            start = max(low, spec.offset)
        else:
            start = low
        starts.append(TopicPartition(RAW_MAIL_TOPIC, partition, start))
    if spec.since is not None:
        millis = int(spec.since.timestamp() * 1000)
        found = consumer.offsets_for_times(
            [TopicPartition(RAW_MAIL_TOPIC, tp.partition, millis) for tp in starts], timeout=10
        )
        starts = [
            TopicPartition(
                RAW_MAIL_TOPIC, tp.partition, tp.offset if tp.offset >= 0 else ends[tp.partition]
            )
            for tp in found
        ]
    return [tp for tp in starts if tp.offset < ends[tp.partition]], ends


async def replay(
    settings: Settings,
    spec: ReplaySpec,
    *,
    store: MailStore | None = None,
    out: TextIO = sys.stderr,
    clock: Callable[[], float] = time.monotonic,
) -> ReplayCounts:
    """Run one replay to its end; returns what it did."""
    own_store = store is None
    store = store or create_store(settings)
    await store.open()
    producer = AsyncProducer(producer_config(settings))
    if not spec.dry_run:
        await producer.start()
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"tmpmail-replay-{secrets.token_hex(4)}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": settings.max_record_bytes,
            },
        )
    )
    counts = ReplayCounts()
    try:
        try:
            meta = consumer.list_topics(RAW_MAIL_TOPIC, timeout=10).topics[RAW_MAIL_TOPIC]
        except (KafkaException, KeyError) as exc:
            raise ReplayError(
                f"cannot read {RAW_MAIL_TOPIC} at {settings.kafka_bootstrap}: {exc}; "
                "is Kafka up (`tmpmail status`)?"
            ) from exc
        starts, ends = start_positions(consumer, spec, len(meta.partitions))
        total = sum(ends[tp.partition] - tp.offset for tp in starts)
        out.write(f"replay: {total:,} records in {len(starts)} partition(s)\n")
        pending = {tp.partition for tp in starts}
        if pending:
            consumer.assign(starts)
        lookup = StoreMailboxLookup(store)
        mailbox_key = key_bytes(spec.mailbox) if spec.mailbox else None
        last_progress = 0.0
        # Three batches are in hand at once, each at its own step: one read from Kafka
        # (librdkafka, on a thread), the one before it admitted and parsed (the parser's
        # thread), and the one before that written (the store's thread); the written
        # batch's deliveries then await their acks while the next is written. One batch
        # per step, in order, so order and memory stay bounded.
        fetching = _fetch(consumer) if pending else None
        prepared: PreparedBatch | None = None
        writing: asyncio.Future[BatchOutcome] | None = None
        publishing: asyncio.Future[int] | None = None
        try:
            while fetching is not None or prepared is not None:
                if prepared is not None:
                    writing = asyncio.ensure_future(
                        write_prepared(prepared, store=store, now=utcnow())
                    )
                    prepared = None
                if fetching is not None:
                    messages = await fetching
                    records = _records(messages, pending, ends, mailbox_key, counts)
                    fetching = _fetch(consumer) if pending else None
                    if records and not spec.dry_run:
                        prepared = await prepare_raw_batch(
                            records, lookup=lookup, message_ttl=settings.message_ttl, now=utcnow()
                        )
                if writing is not None:
                    outcome = await writing
                    writing = None
                    counts.add(outcome)
                    new = set(outcome.inserted_ids)  # only new mail is announced live
                    announced = BatchOutcome(
                        deliveries=[e for e in outcome.deliveries if e.message_id in new]
                    )
                    if publishing is not None:
                        await publishing
                    publishing = asyncio.ensure_future(publish_outcome(producer, announced))
                done = not (pending or prepared)
                if done or clock() - last_progress >= PROGRESS_EVERY_S:
                    last_progress = clock()
                    out.write(counts.line(total) + ("\n" if done else "\r"))
                    out.flush()
            if publishing is not None:
                await publishing
        finally:
            # The consumer and the store close below: what runs on their threads ends first.
            running = [step for step in (fetching, writing) if step is not None]
            if running:
                await asyncio.wait(running)
            if publishing is not None and not publishing.done():
                publishing.cancel()
        out.write(counts.summary() + "\n")
        return counts
    finally:
        consumer.close()
        if not spec.dry_run:
            await producer.stop()
        if own_store:
            await store.close()


def _fetch(consumer: Consumer) -> asyncio.Future[list[Any]]:
    """The next batch from Kafka, read on a thread (librdkafka waits up to ``POLL_S``)."""
    return asyncio.ensure_future(asyncio.to_thread(consumer.consume, BATCH, POLL_S))


def _records(
    messages: list[Any],
    pending: set[int],
    ends: dict[int, int],
    mailbox_key: bytes | None,
    counts: ReplayCounts,
) -> list[RawRecord]:
    """The records of ``messages`` to reprocess; a partition leaves ``pending`` at its end."""
    records: list[RawRecord] = []
    for msg in messages:
        partition = msg.partition() or 0
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard(partition)
            else:
                counts.errors += 1
                log.warning("replay: %s", error)
            continue
        offset = msg.offset() or 0
        if partition not in pending or offset >= ends[partition]:
            pending.discard(partition)
            continue
        if offset + 1 >= ends[partition]:
            pending.discard(partition)
        if mailbox_key is not None and msg.key() != mailbox_key:
            counts.skipped += 1
            continue
        counts.read += 1
        headers = _bytes_headers(msg.headers())
        records.append(RawRecord(msg.value(), headers, partition, offset, msg.key()))
    return records


def _bytes_headers(headers: Any) -> list[tuple[str, bytes]]:
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    return [(str(k), v) for k, v in items if isinstance(v, bytes)]


def parse_since(text: str) -> datetime:
    """An ISO time, or a relative one like ``2h`` / ``3d`` before now."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return utcnow() - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"--since {text!r}: give an ISO time like 2026-12-01T10:00:00Z") from None
    return value
