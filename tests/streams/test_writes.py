"""No mail can stall the worker: the isolated write path and the bounded publishes, with
store and producer doubles (pure logic; the real path is in tests/e2e)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bus import ProduceError
from schemas.records import DeliveryEvent, RawMailEnvelope, new_ingest_id
from schemas.topics import raw_mail_topic
from store import NewMessage, StoreError, WriteResult
from streams import service
from streams.service import (
    BatchOutcome,
    MailboxView,
    RawRecord,
    publish_outcome,
    store_raw_batch,
    worker_error_outcome,
)
from streams.writes import RetryPolicy, WorkerHealth, write_isolated

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(batch_attempts=2, first_backoff_s=0.0, max_backoff_s=0.0)


async def no_sleep(_seconds: float) -> None:
    return None


class FlakyStore:
    """Refuses any batch holding a message whose subject is in ``poison``; refuses even its
    raw-only form when the subject is in ``deadly``; can be unreachable for a while."""

    def __init__(
        self, poison: set[str] = frozenset(), deadly: set[str] = frozenset(), down_for: int = 0
    ) -> None:
        self.poison, self.deadly, self.down_for = set(poison), set(deadly), down_for
        self.stored: dict[str, NewMessage] = {}
        self.calls = 0

    async def ping(self) -> None:
        if self.down_for > 0:
            self.down_for -= 1
            raise StoreError("connection refused")

    async def store_messages(self, batch: Sequence[NewMessage], now: datetime) -> list[WriteResult]:
        self.calls += 1
        if self.down_for > 0:
            raise StoreError("connection refused")
        for message in batch:
            if message.subject in self.poison or message.sender in self.deadly:
                raise StoreError(f"DocumentTooLarge: {message.subject[:20]}")
        out = []
        for message in batch:
            self.stored[message.id] = message
            out.append(WriteResult(message.id, message.address, "inserted", len(self.stored)))
        return out


def _message(subject: str, sender: str = "a@example.test") -> NewMessage:
    return NewMessage(
        id=subject,
        address="bob@tmpmail.test",
        ingest_id="i",
        received_at=NOW,
        expires_at=NOW + timedelta(days=7),
        raw=b"raw " + subject.encode(),
        subject=subject,
        sender=sender,
    )


async def test_one_refused_message_does_not_hold_back_its_batch() -> None:
    store = FlakyStore(poison={"poison"})
    health = WorkerHealth()
    batch = [_message("one"), _message("poison"), _message("two")]
    outcome = await write_isolated(store, batch, NOW, policy=FAST, health=health, sleep=no_sleep)
    assert [r.status if r else None for r in outcome.results] == ["inserted"] * 3
    assert not outcome.failures
    kept = store.stored["poison"]
    assert kept.raw == b"raw poison" and kept.subject == ""  # stored raw only
    assert kept.parse_errors[0].startswith("stored raw only")
    assert store.stored["one"].subject == "one"


async def test_a_message_refused_even_raw_is_given_up_with_its_reason() -> None:
    store = FlakyStore(poison={"bad"}, deadly={"evil@example.test"})
    health = WorkerHealth()
    batch = [_message("bad", sender="evil@example.test"), _message("fine")]
    outcome = await write_isolated(store, batch, NOW, policy=FAST, health=health, sleep=no_sleep)
    assert outcome.results[0] is None and outcome.results[1] is not None
    assert "DocumentTooLarge" in outcome.failures[0] and health.given_up == 1


async def test_an_unavailable_store_is_waited_for_and_not_counted() -> None:
    store = FlakyStore(down_for=3)
    health = WorkerHealth()
    seen_down: list[bool] = []

    async def sleep(_seconds: float) -> None:
        seen_down.append(not health.store_ok)

    outcome = await write_isolated(
        store, [_message("m")], NOW, policy=FAST, health=health, sleep=sleep
    )
    assert outcome.results[0] is not None and health.store_ok
    assert seen_down and all(seen_down)  # not ready while it waited


async def test_an_error_that_is_not_the_stores_goes_straight_to_one_by_one() -> None:
    class Broken(FlakyStore):
        batch_attempts = 0

        async def store_messages(
            self, batch: Sequence[NewMessage], now: datetime
        ) -> list[WriteResult]:
            if len(batch) > 1:
                self.batch_attempts += 1
                raise KeyError("nModified")  # a driver bug, not a StoreError
            return await super().store_messages(batch, now)

    store = Broken()
    outcome = await write_isolated(
        store, [_message("a"), _message("b")], NOW, policy=FAST, health=WorkerHealth()
    )
    assert [r.status for r in outcome.results if r] == ["inserted", "inserted"]
    assert store.batch_attempts == 1  # not retried: the data, not the store, is at fault


class Lookup:
    async def find(self, address: str) -> MailboxView | None:
        return MailboxView(address, NOW + timedelta(days=1))


def _raw(subject: str, offset: int, sender: str = "a@example.org") -> RawRecord:
    envelope = RawMailEnvelope(
        ingest_id=new_ingest_id(),
        sender="a@example.org",
        recipient="bob@tmpmail.test",
        client_address="127.0.0.1",
        received_at=NOW,
    )
    body = f"From: {sender}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    _key, _value, headers = raw_mail_topic.encode(envelope, body=body)
    return RawRecord(body, headers, partition=1, offset=offset)


async def test_a_batch_with_a_poison_mail_stores_the_rest_and_drops_it_with_a_reason() -> None:
    store = FlakyStore(poison={"poison"}, deadly={"evil@example.org"})
    outcome = await store_raw_batch(
        [_raw("first", 1), _raw("poison", 2, sender="evil@example.org"), _raw("last", 3)],
        lookup=Lookup(),
        store=store,  # type: ignore[arg-type]
        message_ttl=timedelta(days=7),
        now=NOW,
        policy=FAST,
    )
    assert [ev.subject for ev in outcome.deliveries] == ["first", "last"]
    [(_key, dropped)] = outcome.dropped
    assert dropped.reason == "store_failed" and dropped.source_offset == 2
    assert "DocumentTooLarge" in dropped.detail


async def test_a_parser_that_raises_still_stores_the_raw_mail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(raw: bytes) -> object:
        raise LookupError("unknown encoding: idna-ish")

    monkeypatch.setattr(service, "parse", explode)
    store = FlakyStore()
    outcome = await store_raw_batch(
        [_raw("x", 1)],
        lookup=Lookup(),
        store=store,  # type: ignore[arg-type]
        message_ttl=timedelta(days=7),
        now=NOW,
    )
    [stored] = store.stored.values()
    assert stored.raw.endswith(b"body\r\n") and "parser failed" in stored.parse_errors[0]
    assert len(outcome.deliveries) == 1


class FlakyProducer:
    def __init__(self, failures: list[ProduceError]) -> None:
        self.failures = failures
        self.sent: list[object] = []

    async def publish(
        self, topic: object, record: object, *, body: bytes | None = None, key: bytes | None = None
    ) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(record)


def _delivery(seq: int) -> DeliveryEvent:
    return DeliveryEvent(address="bob@tmpmail.test", message_id="m", seq=seq, received_at=NOW)


async def test_publishes_are_retried_a_bounded_number_of_times() -> None:
    outcome = BatchOutcome(deliveries=[_delivery(1)])
    producer = FlakyProducer([ProduceError("timed out"), ProduceError("timed out")])
    assert await publish_outcome(producer, outcome, sleep=no_sleep) == 0
    assert len(producer.sent) == 1

    producer = FlakyProducer([ProduceError("timed out")] * 5)
    assert await publish_outcome(producer, outcome, sleep=no_sleep) == 1

    producer = FlakyProducer([ProduceError("too large", retriable=False)])
    assert await publish_outcome(producer, outcome, sleep=no_sleep) == 1
    assert producer.sent == []


def test_the_last_way_out_drops_every_record_with_the_error() -> None:
    outcome = worker_error_outcome([_raw("a", 7), _raw("b", 8)], RuntimeError("boom"))
    assert [(d.reason, d.source_offset) for _, d in outcome.dropped] == [
        ("worker_error", 7),
        ("worker_error", 8),
    ]
    assert "boom" in outcome.dropped[0][1].detail


async def test_the_worker_publishes_a_batch_it_could_not_handle_as_dropped() -> None:
    from streams.service import RawMailWorker

    class Exploding(FlakyStore):
        async def get_mailbox(self, address: str) -> None:
            raise AssertionError("unreachable")

    class BadLookup:
        async def find(self, address: str) -> MailboxView | None:
            raise RuntimeError("table corrupt")  # not caught anywhere below

    producer = FlakyProducer([])
    worker = RawMailWorker(
        lookup=BadLookup(),
        store=Exploding(),  # type: ignore[arg-type]
        producer=producer,
        message_ttl=timedelta(days=7),
    )
    outcome = await worker.handle_batch([_raw("a", 1), _raw("b", 2)], now=NOW)
    assert [d.reason for _, d in outcome.dropped] == ["worker_error", "worker_error"]
    assert len(producer.sent) == 2  # published, so the batch can be acked


def test_an_agent_with_a_dead_actor_is_not_alive() -> None:
    import asyncio as aio
    from types import SimpleNamespace

    from streams.app import _agent_alive

    loop = aio.new_event_loop()
    try:
        done: aio.Future[None] = loop.create_future()
        done.set_result(None)
        running: aio.Future[None] = loop.create_future()
        alive = SimpleNamespace(_actors=[SimpleNamespace(actor_task=running)])
        dead = SimpleNamespace(
            _actors=[SimpleNamespace(actor_task=running), SimpleNamespace(actor_task=done)]
        )
        assert _agent_alive(alive) and not _agent_alive(dead)
        assert not _agent_alive(SimpleNamespace(_actors=[]))
    finally:
        loop.close()
