"""The SMTP hooks with an in-memory sink (pure logic; the wire is in test_smtp, the broker
path in tests/e2e)."""

import asyncio

from ingest.handler import KafkaRawMailSink, RawMailHandler
from ingest.smtp import Envelope, Session
from schemas.records import RawMailEnvelope


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.records: list[tuple[RawMailEnvelope, bytes]] = []

    async def publish(self, records: list[tuple[RawMailEnvelope, bytes]]) -> None:
        if self.fail:
            raise TimeoutError("broker did not answer")
        self.records.extend(records)


def _session() -> Session:
    return Session(peer="192.0.2.7", helo="client.example", esmtp=True)


def _envelope(rcpts: list[str], content: bytes) -> Envelope:
    return Envelope(mail_from="a@example.org", rcpt_tos=rcpts, content=content)


async def test_data_publishes_one_record_per_recipient_and_answers_250() -> None:
    sink = RecordingSink()
    handler = RawMailHandler(sink, domains=["tmpmail.test"], hostname="mx.tmpmail.test")
    body = b"Subject: hi\r\n\r\n\x00\xff bytes as sent\r\n"
    reply = await handler.handle_DATA(
        _session(), _envelope(["A@tmpmail.test", "b+x@tmpmail.test"], body)
    )
    assert reply.startswith("250 2.0.0 ")
    assert [env.mailbox_key for env, _ in sink.records] == ["a@tmpmail.test", "b@tmpmail.test"]
    ingest_ids = {env.ingest_id for env, _ in sink.records}
    assert len(ingest_ids) == 1 and ingest_ids.pop() in reply
    for env, value in sink.records:
        assert value.startswith(b"Received: from client.example ([192.0.2.7])")
        assert value.endswith(body)  # exact bytes, never re-encoded
        assert env.client_address == "192.0.2.7" and env.helo == "client.example"
        assert env.recipients == 2


async def test_one_recipient_is_named_in_the_trace_line() -> None:
    sink = RecordingSink()
    handler = RawMailHandler(sink, domains=["tmpmail.test"], hostname="mx")
    await handler.handle_DATA(_session(), _envelope(["bob@tmpmail.test"], b"x\r\n"))
    [(_env, value)] = sink.records
    assert b"\tfor <bob@tmpmail.test>;" in value


async def test_a_retry_has_the_same_body_digest_under_a_new_ingest_id() -> None:
    sink = RecordingSink()
    handler = RawMailHandler(sink, domains=["tmpmail.test"], hostname="mx")
    for _ in range(2):
        await handler.handle_DATA(_session(), _envelope(["bob@tmpmail.test"], b"same\r\n"))
    first, second = (env for env, _ in sink.records)
    assert first.ingest_id != second.ingest_id and first.body_sha256 == second.body_sha256


async def test_broker_failure_answers_451_not_5xx() -> None:
    handler = RawMailHandler(RecordingSink(fail=True), domains=["tmpmail.test"], hostname="mx")
    reply = await handler.handle_DATA(_session(), _envelope(["a@tmpmail.test"], b"x\r\n"))
    assert reply.startswith("451 4.3.0")


def test_rcpt_hook_appends_only_accepted() -> None:
    handler = RawMailHandler(RecordingSink(), domains=["tmpmail.test"], hostname="mx")
    env = _envelope([], b"")
    assert handler.handle_RCPT(_session(), env, "a@tmpmail.test").startswith("250")
    assert handler.handle_RCPT(_session(), env, "a@other.test").startswith("550 5.7.1")
    assert env.rcpt_tos == ["a@tmpmail.test"]


class HeldProducer:
    """``publish_many`` waits until released; what it was given is kept."""

    def __init__(self) -> None:
        self.published: list[object] = []
        self.release = asyncio.Event()

    async def publish_many(self, topic: object, records: list[object]) -> list[object]:
        self.published.extend(records)
        await self.release.wait()
        return []


async def test_mails_go_through_the_lingering_producer_only_while_many_await_their_ack() -> None:
    quick, busy = HeldProducer(), HeldProducer()
    sink = KafkaRawMailSink(quick, 5.0, busy=busy, busy_at=2)  # type: ignore[arg-type]
    mails = [[(f"mail-{n}", b"x")] for n in range(5)]
    tasks = [asyncio.ensure_future(sink.publish(m)) for m in mails]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert sink.in_flight == 5
    # The first two found fewer than two in flight: no linger. The rest: batched.
    assert quick.published == [mails[0][0], mails[1][0]]
    assert busy.published == [m[0] for m in mails[2:]]
    quick.release.set()
    busy.release.set()
    await asyncio.gather(*tasks)
    assert sink.in_flight == 0
    await sink.publish(mails[0])  # type: ignore[arg-type]  # idle again: the quick one
    assert quick.published[-1] == mails[0][0]


async def test_without_a_lingering_producer_every_mail_takes_the_quick_one() -> None:
    quick = HeldProducer()
    quick.release.set()
    sink = KafkaRawMailSink(quick, 5.0)  # type: ignore[arg-type]
    await asyncio.gather(*(sink.publish([(n, b"x")]) for n in range(10)))  # type: ignore[list-item]
    assert len(quick.published) == 10 and sink.in_flight == 0
