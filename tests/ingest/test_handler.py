"""The aiosmtpd hooks with an in-memory sink (pure logic; the real path is in tests/e2e)."""

from types import SimpleNamespace

from ingest.handler import RawMailHandler
from schemas.records import RawMailEnvelope


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.records: list[tuple[RawMailEnvelope, bytes]] = []

    async def publish(self, records: list[tuple[RawMailEnvelope, bytes]]) -> None:
        if self.fail:
            raise TimeoutError("broker did not answer")
        self.records.extend(records)


def _session() -> SimpleNamespace:
    return SimpleNamespace(
        ssl=None, peer=("192.0.2.7", 5000), host_name="client.example", extended_smtp=True
    )


def _envelope(rcpts: list[str], content: bytes) -> SimpleNamespace:
    return SimpleNamespace(
        rcpt_tos=rcpts, original_content=content, mail_from="a@example.org", smtp_utf8=False
    )


async def test_data_publishes_one_record_per_recipient_and_answers_250() -> None:
    sink = RecordingSink()
    handler = RawMailHandler(sink, domains=["tmpmail.test"], hostname="mx.tmpmail.test")
    body = b"Subject: hi\r\n\r\n\x00\xff bytes as sent\r\n"
    reply = await handler.handle_DATA(
        None, _session(), _envelope(["A@tmpmail.test", "b+x@tmpmail.test"], body)
    )
    assert reply.startswith("250 2.0.0 ")
    assert [env.mailbox_key for env, _ in sink.records] == ["a@tmpmail.test", "b@tmpmail.test"]
    ingest_ids = {env.ingest_id for env, _ in sink.records}
    assert len(ingest_ids) == 1 and ingest_ids.pop() in reply
    for env, value in sink.records:
        assert value.startswith(b"Received: from client.example ([192.0.2.7])")
        assert value.endswith(body)  # exact bytes, never re-encoded
        assert env.client_address == "192.0.2.7" and env.helo == "client.example"


async def test_broker_failure_answers_451_not_5xx() -> None:
    handler = RawMailHandler(RecordingSink(fail=True), domains=["tmpmail.test"], hostname="mx")
    reply = await handler.handle_DATA(None, _session(), _envelope(["a@tmpmail.test"], b"x\r\n"))
    assert reply.startswith("451 4.3.0")


async def test_rcpt_hook_appends_only_accepted() -> None:
    handler = RawMailHandler(RecordingSink(), domains=["tmpmail.test"], hostname="mx")
    env = _envelope([], b"")
    assert (await handler.handle_RCPT(None, _session(), env, "a@tmpmail.test", [])).startswith(
        "250"
    )
    assert (await handler.handle_RCPT(None, _session(), env, "a@other.test", [])).startswith(
        "550 5.7.1"
    )
    assert env.rcpt_tos == ["a@tmpmail.test"]
