"""store_raw_batch with an in-memory store double (pure logic; the real path is in e2e)."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from schemas.records import ENVELOPE_HEADER, RawMailEnvelope, new_ingest_id
from schemas.topics import raw_mail_topic
from store import NewMessage, WriteResult
from streams.service import (
    MailboxView,
    RawRecord,
    prepare_raw_batch,
    store_raw_batch,
    write_prepared,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TTL = timedelta(days=7)


class Lookup:
    def __init__(self, boxes: dict[str, datetime]) -> None:
        self.boxes = boxes
        self.asked: list[str] = []

    async def find(self, address: str) -> MailboxView | None:
        self.asked.append(address)
        expires = self.boxes.get(address)
        return MailboxView(address, expires) if expires else None


class MemoryStore:
    """Only what store_raw_batch calls; the contract suite tests the real adapters."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = {}
        self.ids: dict[str, int] = {}
        self.batches: list[list[NewMessage]] = []

    async def store_messages(self, batch: Sequence[NewMessage], now: datetime) -> list[WriteResult]:
        self.batches.append(list(batch))
        out = []
        for m in batch:
            if m.id in self.ids:
                out.append(WriteResult(m.id, m.address, "existing", self.ids[m.id], None, "box"))
                continue
            self.seq[m.address] = self.seq.get(m.address, 0) + 1
            self.ids[m.id] = self.seq[m.address]
            out.append(WriteResult(m.id, m.address, "inserted", self.ids[m.id], None, "box"))
        return out


def _record(
    rcpt: str,
    offset: int,
    *,
    body: bytes = b"Subject: hi\r\n\r\nhello\r\n",
    ingest_id: str | None = None,
) -> RawRecord:
    env = RawMailEnvelope(
        ingest_id=ingest_id or new_ingest_id(),
        sender="a@example.org",
        recipient=rcpt,
        client_address="127.0.0.1",
        received_at=NOW,
    )
    _key, _value, headers = raw_mail_topic.encode(env, body=body)
    return RawRecord(body, headers, partition=2, offset=offset)


async def test_stores_known_and_drops_unknown_with_reasons() -> None:
    store = MemoryStore()
    lookup = Lookup(
        {
            "bob@tmpmail.test": NOW + timedelta(days=1),
            "old@tmpmail.test": NOW - timedelta(seconds=1),
        }
    )
    records = [
        _record("Bob+x@tmpmail.test", 10),
        _record("nobody@tmpmail.test", 11),
        _record("old@tmpmail.test", 12),
        RawRecord(b"x", [("other", b"1")], 2, 13, key=b"who@tmpmail.test"),
        _record("bob@tmpmail.test", 14),
    ]
    out = await store_raw_batch(
        records,
        lookup=lookup,
        store=store,  # type: ignore[arg-type]
        message_ttl=TTL,
        now=NOW,
    )
    assert len(store.batches) == 1 and len(store.batches[0]) == 2  # one store call per batch
    assert [ev.seq for ev in out.deliveries] == [1, 2]
    assert {ev.address for ev in out.deliveries} == {"bob@tmpmail.test"}
    assert {ev.mailbox_id for ev in out.deliveries} == {"box"}  # the store's owner, passed on
    reasons = {(d.reason, d.source_offset) for _, d in out.dropped}
    assert reasons == {("unknown_mailbox", 11), ("expired_mailbox", 12), ("bad_envelope", 13)}
    # Without an envelope, the drop keeps the record's own key so it can be traced.
    assert (b"who@tmpmail.test", "bad_envelope") in {(k, d.reason) for k, d in out.dropped}
    assert (b"nobody@tmpmail.test", "unknown_mailbox") in {(k, d.reason) for k, d in out.dropped}
    stored = store.batches[0][0]
    assert stored.raw == records[0].value and stored.subject == "hi"
    assert stored.expires_at == NOW + TTL


async def test_redelivery_publishes_the_same_sequence_again() -> None:
    store = MemoryStore()
    lookup = Lookup({"bob@tmpmail.test": NOW + timedelta(days=1)})
    record = _record("bob@tmpmail.test", 1, ingest_id="0123456789abcdef")
    first = await store_raw_batch(
        [record],
        lookup=lookup,
        store=store,  # type: ignore[arg-type]
        message_ttl=TTL,
        now=NOW,
    )
    again = await store_raw_batch(
        [record],
        lookup=lookup,
        store=store,  # type: ignore[arg-type]
        message_ttl=TTL,
        now=NOW,
    )
    assert first.deliveries == again.deliveries
    assert again.counts["existing"] == 1


async def test_batch_of_only_drops_never_calls_the_store() -> None:
    store = MemoryStore()
    out = await store_raw_batch(
        [_record("x@tmpmail.test", 1)], lookup=Lookup({}), store=store, message_ttl=TTL, now=NOW
    )  # type: ignore[arg-type]
    assert store.batches == [] and out.counts["dropped:unknown_mailbox"] == 1
    assert out.dropped[0][0] == b"x@tmpmail.test"
    assert ENVELOPE_HEADER  # the header name is part of the contract


async def test_a_batch_is_prepared_without_the_store_then_written_in_one_call() -> None:
    store = MemoryStore()
    lookup = Lookup({"bob@tmpmail.test": NOW + timedelta(days=1)})
    records = [_record("bob@tmpmail.test", 20), _record("nobody@tmpmail.test", 21)]
    prepared = await prepare_raw_batch(records, lookup=lookup, message_ttl=TTL, now=NOW)
    # Admitted and parsed, the drop already counted; nothing written yet (a replay writes
    # the previous batch meanwhile).
    assert store.batches == []
    assert [m.subject for m in prepared.messages] == ["hi"]
    assert [d.reason for _, d in prepared.outcome.dropped] == ["unknown_mailbox"]
    out = await write_prepared(prepared, store=store, now=NOW)  # type: ignore[arg-type]
    assert len(store.batches) == 1 and [ev.seq for ev in out.deliveries] == [1]
    assert out.counts["inserted"] == 1 and out.counts["dropped:unknown_mailbox"] == 1


async def test_a_batch_with_nothing_admitted_writes_nothing() -> None:
    store = MemoryStore()
    prepared = await prepare_raw_batch(
        [_record("nobody@tmpmail.test", 30)], lookup=Lookup({}), message_ttl=TTL, now=NOW
    )
    out = await write_prepared(prepared, store=store, now=NOW)  # type: ignore[arg-type]
    assert store.batches == [] and out.deliveries == []
    assert [d.reason for _, d in out.dropped] == ["unknown_mailbox"]


async def test_each_address_is_looked_up_once_per_batch() -> None:
    store = MemoryStore()
    lookup = Lookup({"bob@tmpmail.test": NOW + timedelta(days=1)})
    records = [_record("nobody@tmpmail.test", n) for n in range(5)] + [
        _record("bob@tmpmail.test", 5),
        _record("Bob@tmpmail.test", 6),
    ]
    out = await store_raw_batch(
        records,
        lookup=lookup,
        store=store,
        message_ttl=TTL,
        now=NOW,  # type: ignore[arg-type]
    )
    assert sorted(lookup.asked) == ["bob@tmpmail.test", "nobody@tmpmail.test"]
    assert out.counts["dropped:unknown_mailbox"] == 5 and out.counts["inserted"] == 2
    # The next batch asks again: a mailbox created meanwhile is found.
    lookup.boxes["nobody@tmpmail.test"] = NOW + timedelta(days=1)
    again = await store_raw_batch(
        [_record("nobody@tmpmail.test", 7)],
        lookup=lookup,
        store=store,  # type: ignore[arg-type]
        message_ttl=TTL,
        now=NOW,
    )
    assert again.counts["inserted"] == 1
