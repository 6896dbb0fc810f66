"""Topic creation on a broker that has only just opened its port, as on a fresh machine.

Each round formats a new cluster, starts its broker and calls ``ensure_topics`` the
moment the port accepts connections: the broker may not have registered yet, and a topic
it has just created may not have its partitions in its metadata yet.
"""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient

from bus import cluster_id, ensure_topics
from schemas.topics import topic_specs
from tests.fresh_kafka import FreshKafka

ROUNDS = 5


def test_topics_settle_on_five_fresh_brokers_in_a_row(fresh_kafka: FreshKafka) -> None:
    clusters: set[str] = set()
    for round_ in range(ROUNDS):
        started = time.monotonic()
        with fresh_kafka() as settings:
            port_open = time.monotonic()
            specs = topic_specs(settings)
            assert sorted(ensure_topics(settings)) == sorted(spec.name for spec in specs)
            settled = time.monotonic()
            metadata = AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(
                timeout=10
            )
            for spec in specs:
                topic = metadata.topics[spec.name]
                assert topic.error is None, (spec.name, topic.error)
                assert sorted(topic.partitions) == list(range(spec.partitions)), spec.name
                assert all(p.leader >= 0 for p in topic.partitions.values()), spec.name
            assert ensure_topics(settings) == []  # a second run finds them all
            clusters.add(cluster_id(settings))
        print(
            f"round {round_ + 1}: port open {port_open - started:.1f}s, "
            f"topics settled {settled - port_open:.2f}s later, "
            f"stopped after {time.monotonic() - started:.1f}s"
        )
    assert len(clusters) == ROUNDS, "every round formats a cluster of its own"
