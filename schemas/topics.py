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

from dataclasses import dataclass, field

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
                "max.message.bytes": str(settings.max_message_bytes + 1024 * 1024),
            },
        ),
        TopicSpec(MAILBOX_LIFECYCLE_TOPIC, n, dict(compact)),
        TopicSpec(DELIVERY_TOPIC, n, {"retention.ms": str(DAY_MS)}),
        TopicSpec(DROPPED_MAIL_TOPIC, n, {"retention.ms": str(8 * DAY_MS)}),
        TopicSpec(MAILBOX_TABLE_CHANGELOG, n, dict(compact)),
    ]
