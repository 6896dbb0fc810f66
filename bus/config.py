"""confluent-kafka client configuration, built once from :class:`Settings`."""

from __future__ import annotations

import logging
from typing import Any

from schemas.settings import Settings


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Base config; librdkafka's own log lines go through Python logging, in our format."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "logger": logging.getLogger("librdkafka"),
        **extra,
    }


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Durable, ordered, and hashing keys as Java's client and Faust do.

    ``partitioner=murmur2_random`` is what keeps our topics co-partitioned with the
    Faust table's changelog: confluent-kafka's default (consistent_random) is not Java's.
    """
    return client_config(
        settings,
        **{
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "message.max.bytes": settings.max_record_bytes,
            "message.timeout.ms": int(settings.produce_timeout_s * 1000),
            "queue.buffering.max.kbytes": 256 * 1024,
            **extra,
        },
    )
