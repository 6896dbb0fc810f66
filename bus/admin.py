"""Topic creation: every topic, with its partition count and config, before any worker starts."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from bus.config import client_config
from schemas.settings import Settings
from schemas.topics import TopicSpec, topic_specs

log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """A topic could not be created, or exists with the wrong partition count."""


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics of :func:`schemas.topics.topic_specs`; return those created.

    Existing topics are checked: a partition count other than the spec's would break
    co-partitioning, so it is an error that names the topic.
    """
    specs = topic_specs(settings)
    # librdkafka would log every failed connection attempt; the error we raise says it once.
    admin = AdminClient(client_config(settings, log_level=0))
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise TopicError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc.args[0].str()}): "
            "start it with `tmpmail up`, or set TMPMAIL_KAFKA_BOOTSTRAP"
        ) from exc
    missing = [spec for spec in specs if spec.name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [_new_topic(spec) for spec in missing], operation_timeout=timeout_s
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
        log.info("created topics %s", created)
        existing = admin.list_topics(timeout=timeout_s).topics
    for spec in specs:
        meta = existing.get(spec.name)
        count = len(meta.partitions) if meta is not None else 0
        if count != spec.partitions:
            raise TopicError(
                f"topic {spec.name} has {count} partitions, expected {spec.partitions}: "
                "co-partitioning needs the same count everywhere (TMPMAIL_TOPIC_PARTITIONS)"
            )
    return created


def _new_topic(spec: TopicSpec) -> NewTopic:
    return NewTopic(
        spec.name, num_partitions=spec.partitions, replication_factor=-1, config=dict(spec.config)
    )
