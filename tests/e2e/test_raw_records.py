"""Raw-mail records produced straight onto the topic, as a replay or a foreign producer would.

Redelivery of the same record lands on the same stored message; a record whose envelope
cannot be read is dropped with its reason, never silently.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx

from bus import AsyncProducer, producer_config
from schemas.records import DroppedMail, RawMailEnvelope, new_ingest_id, utcnow
from schemas.settings import Settings
from schemas.topics import DROPPED_MAIL_TOPIC, RAW_MAIL_TOPIC, raw_mail_topic
from tests.e2e.helpers import TopicTail, create_mailbox, make_mail


async def _produce(settings: Settings, records: list[tuple[bytes, bytes, list]]) -> None:
    producer = AsyncProducer(producer_config(settings))
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send(RAW_MAIL_TOPIC, key=key, value=value, headers=headers)
    finally:
        await producer.stop()


def _record(address: str, subject: str, ingest_id: str | None = None) -> tuple[bytes, bytes, list]:
    envelope = RawMailEnvelope(
        ingest_id=ingest_id or new_ingest_id(),
        sender="replay@example.org",
        recipient=address,
        client_address="127.0.0.1",
        helo="replay.test",
        received_at=utcnow(),
    )
    key, value, headers = raw_mail_topic.encode(envelope, body=make_mail(address, subject))
    return key or b"", value, headers


async def test_redelivered_records_are_stored_once(stack: Settings) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await create_mailbox(client)
        twice = f"twice {uuid.uuid4().hex[:6]}"
        barrier = f"barrier {uuid.uuid4().hex[:6]}"
        duplicate = _record(box.address, twice, ingest_id=new_ingest_id())
        # Same key, so same partition: the barrier is processed after both copies.
        await _produce(stack, [duplicate, duplicate, _record(box.address, barrier)])
        async with asyncio.timeout(60):
            while True:
                r = await client.get("/api/messages", headers=box.auth)
                subjects = [m["subject"] for m in r.json()["messages"]]
                if barrier in subjects:
                    break
                await asyncio.sleep(0.2)
    assert subjects.count(twice) == 1
    assert subjects == [barrier, twice]


async def test_a_record_without_a_readable_envelope_is_dropped_with_its_reason(
    stack: Settings,
) -> None:
    marker = f"no-envelope-{uuid.uuid4().hex[:8]}@{stack.domains[0]}"
    tail = await asyncio.to_thread(TopicTail, stack, DROPPED_MAIL_TOPIC)
    try:
        await _produce(
            stack,
            [
                (
                    marker.encode(),
                    b"Subject: x\r\n\r\nbody\r\n",
                    [("tmpmail-envelope", b"{not json")],
                )
            ],
        )
        _key, value = await asyncio.to_thread(
            tail.wait_for, lambda k, v: k == marker.encode(), 60.0
        )
    finally:
        tail.close()
    dropped = DroppedMail.from_bytes(value)
    assert dropped.reason == "bad_envelope"
    assert dropped.detail and dropped.size == len(b"Subject: x\r\n\r\nbody\r\n")
