"""The Faust wiring of the streams worker: topics, the mailbox table, agents and timers.

Everything is built inside :func:`build_app`, from one settings object and one opened
store; nothing touches a loop or a broker at import time.

* ``track_mailbox_lifecycle`` keeps ``mailboxes_by_address`` (key: normalised address)
  from ``tmpmail.mailbox-lifecycle.v1``;
* ``store_raw_mail`` takes batches from ``tmpmail.raw-mail.v1`` (co-partitioned with the
  table: same key, same count, same murmur2), looks each recipient up in the table (then
  the store), writes the batch with one store call, then publishes to
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

from bus import AsyncProducer
from schemas.keys import key_bytes
from schemas.records import MailboxLifecycleEvent, RecordError, utcnow
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
from streams.service import (
    BatchOutcome,
    MailboxView,
    RawRecord,
    mailbox_view,
    publish_outcome,
    store_raw_batch,
    worker_error_outcome,
)
from streams.state import streams_state_dir
from streams.writes import RetryPolicy, WorkerHealth

log = logging.getLogger("tmpmail.streams")

BATCH_MAX = 500
#: How long a batch waits for more mail. Short, so that a lone mail goes through at once;
#: under load, what arrives while a batch is being written makes the next batch large.
BATCH_WITHIN_S = 0.005
FETCH_MAX_BYTES = 16 * 1024 * 1024
RETRY_POLICY = RetryPolicy()


class TableThenStoreLookup:
    """Mailbox look-up: the Faust table first; on a miss, the store.

    The store fallback closes the race between creating an address (store, then the
    lifecycle topic) and its first mail arriving before the table has learnt it.
    """

    def __init__(self, table: Any, store: MailStore) -> None:
        self._table = table
        self._store = store

    async def find(self, address: str) -> MailboxView | None:
        value = self._table.get(key_bytes(address))
        if value is not None:
            try:
                return mailbox_view(MailboxLifecycleEvent.from_bytes(value))
            except RecordError:
                log.warning("unreadable table entry for %s; asking the store", address)
        mailbox = await self._store.get_mailbox(address)
        if mailbox is None:
            return None
        return MailboxView(address=mailbox.address, expires_at=mailbox.expires_at)


def build_app(settings: Settings, store: MailStore, producer: AsyncProducer) -> faust.App:
    """The worker's app. ``producer`` publishes deliveries and drops (the one publish path
    every process uses); Faust's own producer writes only the table's changelog."""
    partitions = settings.topic_partitions
    app = faust.App(
        STREAMS_APP_ID,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        store="memory://",
        datadir=str(streams_state_dir(settings)),
        web_enabled=False,
        topic_partitions=partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=FETCH_MAX_BYTES,
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
        MAILBOX_TABLE, default=None, partitions=partitions, key_type=bytes, value_type=bytes
    )
    lookup = TableThenStoreLookup(mailboxes_by_address, store)

    @app.agent(lifecycle_topic)
    async def track_mailbox_lifecycle(stream: faust.StreamT) -> AsyncIterator[None]:
        async for event in stream.events():
            try:
                change = MailboxLifecycleEvent.from_bytes(event.value)
                key = key_bytes(change.address)
            except (RecordError, ValueError) as exc:
                log.error(
                    "skipping unreadable lifecycle record at %d/%d: %s",
                    event.message.partition,
                    event.message.offset,
                    exc,
                )
                continue
            if change.kind == "deleted":
                mailboxes_by_address.pop(key, None)
            else:
                mailboxes_by_address[key] = event.value
            yield None

    health = WorkerHealth()

    async def handle_raw_batch(records: list[RawRecord]) -> BatchOutcome:
        """Store a batch and publish what came of it; the batch can then be acked."""
        try:
            outcome = await store_raw_batch(
                records,
                lookup=lookup,
                store=store,
                message_ttl=settings.message_ttl,
                now=utcnow(),
                policy=RETRY_POLICY,
                health=health,
            )
        except Exception as exc:  # nothing below should raise; if it does, a way out
            log.exception(
                "a batch of %d raw mails failed; publishing them as dropped", len(records)
            )
            outcome = worker_error_outcome(records, exc)
        await publish_outcome(producer, outcome)
        return outcome

    @app.agent(raw_mail_topic)
    async def store_raw_mail(stream: faust.StreamT) -> AsyncIterator[None]:
        # noack_take: Faust's take()/take_events() ack a batch in a ``finally``, so a
        # batch cut short by a crash or a shutdown would be committed unwritten. Here a
        # batch is acked only after its store write and its publishes were acknowledged.
        async for events in stream.noack_take(  # type: ignore[attr-defined]
            BATCH_MAX, within=BATCH_WITHIN_S
        ):
            records = [
                RawRecord(
                    e.value, _headers(e), e.message.partition, e.message.offset, e.message.key
                )
                for e in events
            ]
            outcome = await handle_raw_batch(records)
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

    ready_file = settings.streams_ready_file
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
