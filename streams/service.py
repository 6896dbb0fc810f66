"""What the streams worker does with a batch of raw mail, free of Faust and Kafka.

``store_raw_batch`` validates each record's envelope, looks its mailbox up (table first,
then the store), parses a summary, writes the batch to the store in one call, and
returns the delivery events and drop records for the agent to publish. Nothing is lost
silently: every record ends as stored, a drop with a reason, or an intentional skip
(tombstoned or expired) that is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bus import ProduceError
from mail import ParsedResult, parse
from schemas.keys import AddressError
from schemas.mail import MailSummary, ParsedMail, summary_fields
from schemas.records import (
    DeliveryEvent,
    DroppedMail,
    MailboxLifecycleEvent,
    RawMailEnvelope,
    RecordError,
)
from schemas.topics import delivery_topic, dropped_mail_topic
from store import MailStore, NewMessage
from streams.writes import RetryPolicy, Sleep, WorkerHealth, describe, write_isolated

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One raw-mail record as consumed: value bytes, headers and where it came from."""

    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None
    partition: int
    offset: int
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class MailboxView:
    address: str
    expires_at: datetime


class MailboxLookup(Protocol):
    async def find(self, address: str) -> MailboxView | None: ...


@dataclass(slots=True)
class BatchOutcome:
    """What the agent publishes for a batch: deliveries, and drops with the Kafka key each
    keeps (the recipient's, or the source record's own when the envelope is unreadable)."""

    deliveries: list[DeliveryEvent] = field(default_factory=list)
    dropped: list[tuple[bytes | None, DroppedMail]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    #: Ids of the messages this batch stored for the first time.
    inserted_ids: list[str] = field(default_factory=list)


def mailbox_view(event: MailboxLifecycleEvent) -> MailboxView | None:
    """The table's view of a mailbox after ``event`` (``None`` once deleted)."""
    if event.kind == "deleted":
        return None
    return MailboxView(address=event.address, expires_at=event.expires_at)


@dataclass(slots=True)
class PreparedBatch:
    """A batch admitted and parsed, not written yet: its drops so far, and the messages
    to write with the records and envelopes they came from."""

    outcome: BatchOutcome
    accepted: list[tuple[RawRecord, RawMailEnvelope]]
    messages: list[NewMessage]


async def store_raw_batch(
    records: Sequence[RawRecord],
    *,
    lookup: MailboxLookup,
    store: MailStore,
    message_ttl: timedelta,
    now: datetime,
    policy: RetryPolicy | None = None,
    health: WorkerHealth | None = None,
) -> BatchOutcome:
    """Admit, parse, write and account for every record of a batch; never raises for
    one record's sake (see :mod:`streams.writes`). The two halves,
    :func:`prepare_raw_batch` and :func:`write_prepared`, let a caller parse the next
    batch while the store writes this one."""
    prepared = await prepare_raw_batch(records, lookup=lookup, message_ttl=message_ttl, now=now)
    return await write_prepared(prepared, store=store, now=now, policy=policy, health=health)


async def prepare_raw_batch(
    records: Sequence[RawRecord],
    *,
    lookup: MailboxLookup,
    message_ttl: timedelta,
    now: datetime,
) -> PreparedBatch:
    """Admit every record (envelope, mailbox) and parse those admitted, off the loop.
    Each address is looked up once per batch (a flood to one unknown address, or a
    replay, whose look-ups go to the store, asks once, not once per mail)."""
    outcome = BatchOutcome()
    accepted: list[tuple[RawRecord, RawMailEnvelope]] = []
    mailboxes: dict[str, MailboxView | None] = {}
    for record in records:
        envelope = await _admit(record, lookup, mailboxes, now, outcome)
        if envelope is not None:
            accepted.append((record, envelope))
    if not accepted:
        return PreparedBatch(outcome, accepted, [])
    parsed = await asyncio.to_thread(_parse_all, [r.value or b"" for r, _ in accepted])
    messages = [
        _new_message(record, envelope, result, message_ttl)
        for (record, envelope), result in zip(accepted, parsed, strict=True)
    ]
    return PreparedBatch(outcome, accepted, messages)


async def write_prepared(
    prepared: PreparedBatch,
    *,
    store: MailStore,
    now: datetime,
    policy: RetryPolicy | None = None,
    health: WorkerHealth | None = None,
) -> BatchOutcome:
    """Write a prepared batch with one store call and account for every message."""
    outcome, accepted, batch = prepared.outcome, prepared.accepted, prepared.messages
    if not batch:
        return outcome
    written = await write_isolated(
        store,
        batch,
        now,
        policy=policy or RetryPolicy(),
        health=health if health is not None else WorkerHealth(),
    )
    for index, ((record, envelope), message, result) in enumerate(
        zip(accepted, batch, written.results, strict=True)
    ):
        if result is None:
            _drop(outcome, record, "store_failed", envelope, written.failures.get(index, ""))
            continue
        outcome.counts[result.status] += 1
        if result.status == "inserted":
            outcome.inserted_ids.append(message.id)
        if result.status == "duplicate":
            continue  # a sender's retry: its first copy was announced already
        if result.seq is not None:
            outcome.deliveries.append(_delivery(message, result.seq, result.mailbox_id))
        elif result.status == "no_mailbox":
            _drop(outcome, record, "unknown_mailbox", envelope, "mailbox not in the store")
        elif result.status == "predates_mailbox":
            _drop(
                outcome,
                record,
                "predates_mailbox",
                envelope,
                "received before the mailbox was created (a previous owner's mail)",
            )
    return outcome


async def _admit(
    record: RawRecord,
    lookup: MailboxLookup,
    mailboxes: dict[str, MailboxView | None],
    now: datetime,
    outcome: BatchOutcome,
) -> RawMailEnvelope | None:
    try:
        envelope = RawMailEnvelope.from_headers(list(record.headers or ()))
        address = envelope.mailbox_key
    except (RecordError, AddressError) as exc:
        _drop(outcome, record, "bad_envelope", None, str(exc))
        return None
    if record.value is None:
        _drop(outcome, record, "bad_envelope", envelope, "record has no value")
        return None
    if address in mailboxes:
        mailbox = mailboxes[address]
    else:
        mailbox = mailboxes[address] = await lookup.find(address)
    if mailbox is None:
        _drop(outcome, record, "unknown_mailbox", envelope, "no such mailbox")
        return None
    if mailbox.expires_at <= envelope.received_at:
        _drop(
            outcome,
            record,
            "expired_mailbox",
            envelope,
            f"mailbox expired at {mailbox.expires_at.isoformat()}",
        )
        return None
    return envelope


def _drop(
    outcome: BatchOutcome,
    record: RawRecord,
    reason: str,
    envelope: RawMailEnvelope | None,
    detail: str,
) -> None:
    recipient = envelope.recipient if envelope else ""
    dropped = DroppedMail(
        reason=reason,  # type: ignore[arg-type]
        detail=detail[:500],
        recipient=recipient,
        ingest_id=envelope.ingest_id if envelope else "",
        source_partition=record.partition,
        source_offset=record.offset,
        size=len(record.value or b""),
    )
    key = dropped_mail_topic.key_of(dropped) if envelope else None
    outcome.counts[f"dropped:{reason}"] += 1
    outcome.dropped.append((key if key is not None else record.key, dropped))
    # One line per drop only at DEBUG: mail to unknown addresses is the common abuse, and
    # the record on the dropped-mail topic is the account of it; the agent logs a count.
    log.debug(
        "dropped mail %s for %r at %d/%d: %s (%s)",
        dropped.ingest_id,
        recipient,
        record.partition,
        record.offset,
        reason,
        detail,
    )


def _parse_all(raws: list[bytes]) -> list[ParsedResult | None]:
    return [_parse_one(raw) for raw in raws]


def _parse_one(raw: bytes) -> ParsedResult | None:
    """The parser never raises by contract; should it, the mail is stored raw anyway."""
    try:
        return parse(raw)
    except Exception:
        log.exception("the parser raised on a mail of %d bytes", len(raw))
        return None


def _new_message(
    record: RawRecord, envelope: RawMailEnvelope, result: ParsedResult | None, ttl: timedelta
) -> NewMessage:
    raw = record.value or b""
    document: ParsedMail | None
    data: tuple[bytes, ...]
    if result is None:
        summary = MailSummary(parse_errors=("parser failed: see the worker's log",))
        document, data, version = None, (), 0
    else:
        summary, document, data = result.mail, result.mail, result.attachment_data
        version = document.parser_version
    fields = summary_fields(summary)
    fields["sender"] = summary.sender or envelope.sender
    return NewMessage(
        **fields,
        id=envelope.message_id,
        address=envelope.mailbox_key,
        ingest_id=envelope.ingest_id,
        received_at=envelope.received_at,
        expires_at=envelope.received_at + ttl,
        raw=raw,
        document=document,
        attachment_data=data,
        parser_version=version,
        dedupe_key=envelope.dedupe_key(summary.message_id_header),
    )


def _delivery(message: NewMessage, seq: int, mailbox_id: str | None) -> DeliveryEvent:
    return DeliveryEvent(
        **summary_fields(message),
        address=message.address,
        message_id=message.id,
        seq=seq,
        size=len(message.raw),
        received_at=message.received_at,
        mailbox_id=mailbox_id or "",
    )


class Publisher(Protocol):
    async def publish(
        self, topic: Any, record: Any, *, body: bytes | None = None, key: bytes | None = None
    ) -> Any: ...


#: A delivery or drop record that cannot be published is tried this often, then logged.
PUBLISH_ATTEMPTS = 3


async def publish_outcome(
    producer: Publisher, outcome: BatchOutcome, *, sleep: Sleep = asyncio.sleep
) -> int:
    """Publish a batch's deliveries and drops, each with a bounded retry; return how many
    were given up (logged). A delivery given up costs only its live push: the message is
    stored, and a client resuming with ``Last-Event-ID`` reads it from the store."""
    jobs = [(delivery_topic, event, None) for event in outcome.deliveries] + [
        (dropped_mail_topic, dropped, key) for key, dropped in outcome.dropped
    ]
    results = await asyncio.gather(
        *(_publish_one(producer, topic, record, key, sleep) for topic, record, key in jobs)
    )
    return results.count(False)


async def _publish_one(
    producer: Publisher, topic: Any, record: Any, key: bytes | None, sleep: Sleep
) -> bool:
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            await producer.publish(topic, record, key=key)
            return True
        except ProduceError as exc:
            if not exc.retriable or attempt == PUBLISH_ATTEMPTS:
                log.error("gave up publishing to %s: %s", topic.name, exc)
                return False
            await sleep(0.2 * attempt)
    return False  # pragma: no cover - the loop returns


def worker_error_outcome(records: Sequence[RawRecord], error: BaseException) -> BatchOutcome:
    """The way out when handling a batch failed in a way nothing else caught: every record
    is published as dropped with the error, so the batch can be acked (and replayed)."""
    outcome = BatchOutcome()
    for record in records:
        _drop(outcome, record, "worker_error", None, describe(error))
    return outcome


@dataclass(slots=True)
class RawMailWorker:
    """What the raw-mail agent does with each batch, apart from Faust: store it, then
    publish what came of it. The batch can be acked once this returns; it never raises
    for a record's sake (the last way out publishes the batch as ``worker_error``)."""

    lookup: MailboxLookup
    store: MailStore
    producer: Publisher
    message_ttl: timedelta
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    health: WorkerHealth = field(default_factory=WorkerHealth)

    async def handle_batch(self, records: Sequence[RawRecord], *, now: datetime) -> BatchOutcome:
        try:
            outcome = await store_raw_batch(
                records,
                lookup=self.lookup,
                store=self.store,
                message_ttl=self.message_ttl,
                now=now,
                policy=self.policy,
                health=self.health,
            )
        except Exception as exc:  # nothing below should raise; if it does, a way out
            log.exception("a batch of %d raw mails failed; publishing it as dropped", len(records))
            outcome = worker_error_outcome(records, exc)
        await publish_outcome(self.producer, outcome)
        return outcome
