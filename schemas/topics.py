"""Topic names, keys, partition counts and retention: defined once, created before any worker.

=============================  ====================  ==========  =====================
topic                          key                   partitions  retention
=============================  ====================  ==========  =====================
``tmpmail.raw-mail.v1``        normalised recipient  N (6)       8 days (configurable)
``tmpmail.mailbox-lifecycle.v1`` normalised address  N (6)       compacted
``tmpmail.delivery.v1``        normalised address    N (6)       1 day
``tmpmail.dropped-mail.v1``    normalised recipient  N (6)       8 days
``tmpmail-streams-mailboxes_by_address-changelog``  address  N  compacted (Faust table)
=============================  ====================  ==========  =====================

Raw mail, lifecycle and the mailbox table are co-partitioned: same key, same partition
count, same murmur2 hash (see :mod:`schemas.keys`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas.keys import key_bytes
from schemas.records import (
    ENVELOPE_HEADER,
    DeliveryEvent,
    DroppedMail,
    MailboxLifecycleEvent,
    RawMailEnvelope,
    Record,
)
from schemas.settings import Settings

RAW_MAIL_TOPIC = "tmpmail.raw-mail.v1"
MAILBOX_LIFECYCLE_TOPIC = "tmpmail.mailbox-lifecycle.v1"
DELIVERY_TOPIC = "tmpmail.delivery.v1"
DROPPED_MAIL_TOPIC = "tmpmail.dropped-mail.v1"

#: Faust application id of the streams worker; it prefixes Faust's own topics.
STREAMS_APP_ID = "tmpmail-streams"
#: The streams worker's table of mailboxes, keyed by normalised address.
MAILBOX_TABLE = "mailboxes_by_address"
MAILBOX_TABLE_CHANGELOG = f"{STREAMS_APP_ID}-{MAILBOX_TABLE}-changelog"

DAY_MS = 86_400_000

R = TypeVar("R", bound=Record)

#: One Kafka record ready to produce: key, value, headers.
Encoded = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


@dataclass(frozen=True)
class TopicBinding(Generic[R]):
    """A topic, the record type it carries and how that record's key is made.

    :meth:`encode` is the only place a record becomes Kafka bytes. A binding with an
    ``envelope_header`` carries its record in that header, beside an opaque body (raw
    mail: the exact bytes received); the others carry the record as the value.
    """

    name: str
    record_type: type[R]
    key_of: Callable[[R], bytes | None]
    envelope_header: str | None = None

    def encode(self, record: R, *, body: bytes | None = None, key: bytes | None = None) -> Encoded:
        """``key`` overrides the record's own key (a dropped record keeps its source's)."""
        record_key = key if key is not None else self.key_of(record)
        if self.envelope_header is None:
            if body is not None:
                raise ValueError(f"{self.name} carries its record as the value, not a body")
            return record_key, record.to_bytes(), []
        if body is None:
            raise ValueError(f"{self.name} needs the body its envelope describes")
        return record_key, body, [(self.envelope_header, record.to_bytes())]


def _dropped_key(record: DroppedMail) -> bytes | None:
    try:
        return key_bytes(record.recipient)
    except ValueError:
        return None


#: Raw mail: the exact bytes as the value, the envelope in a header; keyed by recipient.
raw_mail_topic = TopicBinding(
    RAW_MAIL_TOPIC, RawMailEnvelope, lambda env: key_bytes(env.recipient), ENVELOPE_HEADER
)
mailbox_lifecycle_topic = TopicBinding(
    MAILBOX_LIFECYCLE_TOPIC, MailboxLifecycleEvent, lambda event: key_bytes(event.address)
)
delivery_topic = TopicBinding(DELIVERY_TOPIC, DeliveryEvent, lambda ev: key_bytes(ev.address))
dropped_mail_topic = TopicBinding(DROPPED_MAIL_TOPIC, DroppedMail, _dropped_key)


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created: name, partition count and topic-level config."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return self.config.get("cleanup.policy") == "compact"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic tmpmail uses, Faust's changelog included, in creation order."""
    n = settings.topic_partitions
    compact = {"cleanup.policy": "compact"}
    return [
        TopicSpec(
            RAW_MAIL_TOPIC,
            n,
            {
                "retention.ms": str(settings.raw_mail_retention_ms),
                "max.message.bytes": str(settings.max_record_bytes),
            },
        ),
        TopicSpec(MAILBOX_LIFECYCLE_TOPIC, n, dict(compact)),
        TopicSpec(DELIVERY_TOPIC, n, {"retention.ms": str(DAY_MS)}),
        TopicSpec(DROPPED_MAIL_TOPIC, n, {"retention.ms": str(8 * DAY_MS)}),
        TopicSpec(MAILBOX_TABLE_CHANGELOG, n, dict(compact)),
    ]
