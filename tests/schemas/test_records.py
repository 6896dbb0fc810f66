from datetime import UTC, datetime, timedelta

import pytest

from schemas.records import (
    ENVELOPE_HEADER,
    DeliveryEvent,
    DroppedMail,
    MailboxLifecycleEvent,
    RawMailEnvelope,
    RecordError,
    message_id_for,
    new_ingest_id,
)
from schemas.topics import raw_mail_topic


def _envelope(**kw: object) -> RawMailEnvelope:
    fields: dict[str, object] = {
        "ingest_id": new_ingest_id(),
        "sender": "a@example.org",
        "recipient": "Bob+x@TMPMAIL.test",
        "client_address": "127.0.0.1",
        "helo": "client.example",
        "tls": False,
        "received_at": datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
    }
    fields.update(kw)
    return RawMailEnvelope(**fields)  # type: ignore[arg-type]


def test_envelope_round_trips_through_kafka_headers() -> None:
    env = _envelope()
    key, value, headers = raw_mail_topic.encode(env, body=b"raw bytes")
    assert (key, value) == (b"bob@tmpmail.test", b"raw bytes")
    assert headers[0][0] == ENVELOPE_HEADER
    assert RawMailEnvelope.from_headers(headers) == env
    assert RawMailEnvelope.from_headers(dict(headers)) == env
    assert b'"v":1' in headers[0][1]


def test_envelope_key_and_message_id() -> None:
    env = _envelope()
    assert env.mailbox_key == "bob@tmpmail.test"
    # The id depends on the ingest id and the normalised recipient only.
    assert env.message_id == message_id_for(env.ingest_id, "bob@tmpmail.test")
    assert (
        env.message_id
        == _envelope(ingest_id=env.ingest_id, recipient="BOB@tmpmail.test").message_id
    )
    assert (
        env.message_id
        != _envelope(ingest_id=env.ingest_id, recipient="carol@tmpmail.test").message_id
    )
    assert env.message_id != _envelope().message_id


def test_ingest_ids_are_unique_and_time_ordered() -> None:
    ids = [new_ingest_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("other", b"x")],
        [(ENVELOPE_HEADER, b"not json")],
        [(ENVELOPE_HEADER, b'{"v": 2, "ingest_id": "12345678"}')],
    ],
)
def test_bad_envelope_headers_raise_record_error(headers: object) -> None:
    with pytest.raises(RecordError):
        RawMailEnvelope.from_headers(headers)  # type: ignore[arg-type]


def test_naive_received_at_is_taken_as_utc() -> None:
    env = _envelope(received_at=datetime(2026, 1, 1, 0, 0))
    assert env.received_at.tzinfo is not None


def test_lifecycle_and_delivery_round_trip() -> None:
    now = datetime.now(UTC)
    event = MailboxLifecycleEvent(
        kind="created",
        address="a@tmpmail.test",
        mailbox_id="m1",
        created_at=now,
        expires_at=now + timedelta(days=15),
    )
    assert MailboxLifecycleEvent.from_bytes(event.to_bytes()) == event
    delivery = DeliveryEvent(address="a@tmpmail.test", message_id="x", seq=3, received_at=now)
    assert DeliveryEvent.from_bytes(delivery.to_bytes()) == delivery
    with pytest.raises(RecordError):
        DeliveryEvent.from_bytes(b'{"address": "a@tmpmail.test", "seq": 0}')


# --- evolving v1 records ---------------------------------------------------------------------
def test_a_delivery_record_written_before_the_summary_grew_is_readable() -> None:
    old = (
        b'{"v":1,"address":"bob@tmpmail.test","message_id":"m","seq":3,"sender":"a",'
        b'"subject":"s","preview":"p","size":10,"received_at":"2026-11-24T12:00:00Z"}'
    )
    event = DeliveryEvent.from_bytes(old)
    assert (event.seq, event.subject, event.parse_errors) == (3, "s", ())


def test_records_from_a_newer_writer_are_readable() -> None:
    newer = (
        b'{"v":1,"address":"bob@tmpmail.test","message_id":"m","seq":3,'
        b'"received_at":"2026-11-24T12:00:00Z","a_field_from_the_future":{"x":1}}'
    )
    assert DeliveryEvent.from_bytes(newer).seq == 3


def test_every_shape_of_a_message_carries_the_whole_summary() -> None:
    from schemas.api import LiveMessage, MessageSummaryPublic
    from schemas.mail import SUMMARY_FIELDS
    from store import NewMessage, StoredMessage

    for shape in (DeliveryEvent, LiveMessage, MessageSummaryPublic, NewMessage, StoredMessage):
        assert SUMMARY_FIELDS <= set(shape.model_fields), shape.__name__


def test_each_topic_binding_makes_its_key_one_way() -> None:
    from schemas.topics import delivery_topic, dropped_mail_topic, mailbox_lifecycle_topic

    when = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    delivery = DeliveryEvent(address="Bob+x@TMPMAIL.test", message_id="m", seq=1, received_at=when)
    assert delivery_topic.encode(delivery)[0] == b"bob@tmpmail.test"
    lifecycle = MailboxLifecycleEvent(
        kind="created", address="Bob@tmpmail.test", mailbox_id="x", created_at=when, expires_at=when
    )
    key, value, headers = mailbox_lifecycle_topic.encode(lifecycle)
    assert (key, headers) == (b"bob@tmpmail.test", [])
    assert MailboxLifecycleEvent.from_bytes(value) == lifecycle
    dropped = DroppedMail(reason="bad_envelope", recipient="", source_partition=0, source_offset=1)
    assert dropped_mail_topic.encode(dropped)[0] is None
    assert dropped_mail_topic.encode(dropped, key=b"raw-key")[0] == b"raw-key"
    with pytest.raises(ValueError, match="body"):
        raw_mail_topic.encode(_envelope())
    with pytest.raises(ValueError, match="value"):
        delivery_topic.encode(delivery, body=b"x")
