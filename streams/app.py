"""The Faust wiring of the streams worker: topics, the mailbox table, agents and timers.

Everything is built inside :func:`build_app`, from one settings object and one opened
store; nothing touches a loop or a broker at import time.

* ``track_mailbox_lifecycle`` keeps ``mailboxes_by_address`` (key: normalised address)
  from ``tmpmail.mailbox-lifecycle.v1``, in RocksDB on disk (:mod:`streams.table`);
* ``store_raw_mail`` takes batches of what has arrived (:mod:`streams.batches`) from
  ``tmpmail.raw-mail.v1`` (co-partitioned with the table: same key, same count, same
  murmur2), looks each recipient up in the table (then the store), writes the batch
  with one store call, then publishes to
  ``tmpmail.delivery.v1`` and ``tmpmail.dropped-mail.v1`` through the process's
  :class:`bus.AsyncProducer` and waits for those acks before the batch's offsets can be
  committed (at least once).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import TP, CollectionT, EventT, Message, StreamT

from bus import AsyncProducer, ProduceError
from schemas.records import RecordError, utcnow
from schemas.runtime import write_ready_file
from schemas.settings import Settings
from schemas.topics import (
    MAILBOX_LIFECYCLE_TOPIC,
    MAILBOX_TABLE,
    RAW_MAIL_TOPIC,
    STREAMS_APP_ID,
    dropped_mail_topic,
)
from store import MailStore, StoreError
from streams.batches import arrived_batches
from streams.service import RawMailWorker, RawRecord
from streams.table import (
    MailboxTableLookup,
    apply_lifecycle,
    forget_purged_mailboxes,
    table_store_options,
    table_store_settings,
)
from streams.writes import RetryPolicy, WorkerHealth

log = logging.getLogger("tmpmail.streams")

#: The most raw mails a batch holds (and the most read ahead while one is processed).
BATCH_MAX = 500
FETCH_MAX_BYTES = 16 * 1024 * 1024
RETRY_POLICY = RetryPolicy()


class QuietMonitor(Monitor):
    """Faust's monitor without its per-message bookkeeping: its statistics serve Faust's
    web views, which the worker does not run, and its hooks ran for every message and
    event (counters, timestamps, a dict per event), about a tenth of the worker's event
    loop under load. The hooks of rare events (commits, rebalances) stay."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[str, Any] | None:
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT,
        event: EventT,
        state: dict[str, Any] | None = None,
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        pass

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        pass


def build_app(
    settings: Settings, store: MailStore, producer: AsyncProducer, index: int = 0
) -> faust.App:
    """The app of worker ``index`` (of ``TMPMAIL_STREAMS_PROCESSES``, one consumer group:
    each has its own table directory and ready file). ``producer`` publishes deliveries
    and drops (the one publish path every process uses); Faust's own producer writes only
    the table's changelog."""
    partitions = settings.topic_partitions
    app = faust.App(
        STREAMS_APP_ID,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        **table_store_settings(settings, index),
        web_enabled=False,
        Monitor=QuietMonitor,
        topic_partitions=partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=FETCH_MAX_BYTES,
        broker_session_timeout=settings.streams_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.streams_session_timeout_s / 10),
        producer_linger_ms=5,
        producer_acks=-1,
        producer_max_request_size=settings.max_record_bytes,
        producer_max_batch_size=1024 * 1024,
    )

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

    raw_mail_topic = raw_topic(RAW_MAIL_TOPIC)
    lifecycle_topic = raw_topic(MAILBOX_LIFECYCLE_TOPIC)
    # bytes keys and values: Faust then uses the "raw" codec for the changelog.
    mailboxes_by_address = app.Table(
        MAILBOX_TABLE,
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        options=table_store_options(),
    )
    lookup = MailboxTableLookup(mailboxes_by_address, store, partitions=partitions)

    @app.agent(lifecycle_topic)
    async def track_mailbox_lifecycle(stream: faust.StreamT) -> AsyncIterator[None]:
        async for event in stream.events():
            try:
                apply_lifecycle(mailboxes_by_address, event.key, event.value, now=utcnow())
            except RecordError as exc:
                log.error(
                    "skipping unreadable lifecycle record at %d/%d: %s",
                    event.message.partition,
                    event.message.offset,
                    exc,
                )
                continue
            yield None

    health = WorkerHealth()

    worker = RawMailWorker(
        lookup=lookup,
        store=store,
        producer=producer,
        message_ttl=settings.message_ttl,
        policy=RETRY_POLICY,
        health=health,
    )

    @app.agent(raw_mail_topic)
    async def store_raw_mail(stream: faust.StreamT) -> AsyncIterator[None]:
        # Acks are manual (noack): a batch is acked only after its store write and its
        # publishes were acknowledged, so one cut short by a crash or a shutdown is read
        # again. Batches are what has arrived, with no timer (streams.batches).
        manual_acks = stream.noack()  # type: ignore[attr-defined]
        async for events in arrived_batches(manual_acks.events(), BATCH_MAX):
            records = [
                RawRecord(
                    e.value, _headers(e), e.message.partition, e.message.offset, e.message.key
                )
                for e in events
            ]
            outcome = await worker.handle_batch(records, now=utcnow())
            for event in events:
                await stream.ack(event)
            if outcome.dropped:
                log.info(
                    "batch of %d: %s (each drop is on %s)",
                    len(records),
                    dict(outcome.counts),
                    dropped_mail_topic.name,
                )
            else:
                log.debug("batch of %d: %s", len(records), dict(outcome.counts))
            yield None

    @app.timer(settings.purge_interval_s)
    async def purge_expired() -> None:
        try:
            counts = await store.purge_expired(utcnow())
        except StoreError as exc:
            log.warning("purge failed, will retry: %s", exc)
            return
        if counts.messages or counts.tombstones or counts.mailboxes:
            log.info("purged %s", counts)
        try:
            await forget_purged_mailboxes(producer, counts.addresses)
        except ProduceError as exc:
            # Their table entries stay, expired: look-ups pass them by and ask the store.
            log.warning("tombstones of %d purged mailboxes failed: %s", counts.mailboxes, exc)

    ready_file = settings.streams_ready_file(index)
    reported: list[list[int] | None] = [None]

    @app.timer(0.5)
    async def report_readiness() -> None:
        assigned = sorted(
            {tp.partition for tp in app.consumer.assignment() if tp.topic == RAW_MAIL_TOPIC}
        )
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        agents_alive = all(_agent_alive(agent) for agent in app.agents.values())
        ready = assigned and recovered and agents_alive and health.store_ok
        state = assigned if ready and not app.rebalancing else None
        if state == reported[0]:
            return
        reported[0] = state
        if state is None:
            ready_file.unlink(missing_ok=True)
        else:
            write_ready_file(ready_file, {"pid": os.getpid(), "partitions": state})
            log.info("ready: raw-mail partitions %s", state)

    return app


def _agent_alive(agent: Any) -> bool:
    """Every actor of the agent is running (a crashed one is restarted by Faust's
    supervisor; until then the worker is not ready)."""
    actors = list(getattr(agent, "_actors", ()))
    return bool(actors) and all(
        actor.actor_task is not None and not actor.actor_task.done() for actor in actors
    )


def _headers(event: Any) -> list[tuple[str, bytes]]:
    headers = event.message.headers
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or ())
