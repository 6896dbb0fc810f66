from collections.abc import Callable
from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    BrokerMetadata,
    ClusterMetadata,
    NewTopic,
    PartitionMetadata,
    TopicMetadata,
)

import bus.admin as admin_module
from bus import TopicError, cluster_id, ensure_topics
from schemas.settings import Settings
from schemas.topics import topic_specs


def test_unreachable_kafka_is_one_clear_error() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(TopicError, match="TMPMAIL_KAFKA_BOOTSTRAP"):
        ensure_topics(settings, timeout_s=2)
    with pytest.raises(TopicError, match="TMPMAIL_KAFKA_BOOTSTRAP"):
        cluster_id(settings, timeout_s=1)


def test_topics_exist_and_a_different_partition_count_is_refused(stack_sqlite: Settings) -> None:
    assert ensure_topics(stack_sqlite) == []  # `tmpmail up` created them all already
    other = stack_sqlite.model_copy(update={"topic_partitions": 3})
    with pytest.raises(TopicError, match="co-partitioning"):
        ensure_topics(other)
    assert {s.partitions for s in topic_specs(stack_sqlite)} == {stack_sqlite.topic_partitions}


# --- settling, against a scripted admin client (no broker) ----------------------------


class ScriptedAdmin:
    """Answers ``list_topics`` from a script (the last answer repeats); creates what it is asked."""

    def __init__(self, answers: list[ClusterMetadata | KafkaException]) -> None:
        self.answers = answers
        self.calls = 0
        self.created: list[str] = []

    def list_topics(self, timeout: float) -> ClusterMetadata:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, KafkaException):
            raise answer
        return answer

    def create_topics(self, topics: list[NewTopic], **kwargs: object) -> dict[str, Future[None]]:
        self.created += [topic.topic for topic in topics]
        return {topic.topic: _done() for topic in topics}

    def describe_consumer_groups(
        self, groups: list[str], **kwargs: object
    ) -> dict[str, Future[None]]:
        return {group: _done() for group in groups}


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


def _metadata(
    topics: dict[str, list[int]], *, broker: bool = True, error: dict[str, int] | None = None
) -> ClusterMetadata:
    """Metadata with ``topics`` (name: the leader of each partition) and the offsets topic."""
    metadata = ClusterMetadata()
    if broker:
        metadata.brokers = {1: BrokerMetadata()}
        metadata.controller_id = 1
    for name, leaders in {**topics, "__consumer_offsets": [1]}.items():
        topic = TopicMetadata()
        topic.topic = name
        if error and name in error:
            topic.error = KafkaError(error[name])
        for pid, leader in enumerate(leaders):
            partition = PartitionMetadata()
            partition.id, partition.leader = pid, leader
            topic.partitions[pid] = partition
        metadata.topics[name] = topic
    return metadata


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ScriptedAdmin]:
    monkeypatch.setattr(admin_module, "POLL_S", 0.01)

    def install(*answers: ClusterMetadata | KafkaException) -> ScriptedAdmin:
        admin = ScriptedAdmin(list(answers))
        monkeypatch.setattr(admin_module, "_admin", lambda settings: admin)
        return admin

    return install


SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1")
NAMES = [spec.name for spec in topic_specs(SETTINGS)]
SIX = [1] * 6


def test_waits_for_a_broker_then_for_every_partition_and_leader(
    scripted: Callable[..., ScriptedAdmin],
) -> None:
    transport = KafkaException(KafkaError(KafkaError._TRANSPORT))
    admin = scripted(
        transport,  # the port is open, the broker does not answer yet
        _metadata({}, broker=False),  # it answers, but has not registered
        _metadata({}),  # registered: create every topic
        _metadata({NAMES[0]: SIX}),  # the others are not in its metadata yet
        _metadata(
            {name: [] for name in NAMES}, error={n: KafkaError.LEADER_NOT_AVAILABLE for n in NAMES}
        ),
        _metadata({name: [1, 1, 1] for name in NAMES}),  # "has 3 partitions, expected 6"
        _metadata({name: [1, 1, 1, -1, 1, 1] for name in NAMES}),  # a leader is missing
        _metadata({name: SIX for name in NAMES}),
    )
    assert ensure_topics(SETTINGS, timeout_s=5) == NAMES
    assert admin.created == NAMES
    assert admin.calls == 8


def test_topics_that_never_settle_are_named(scripted: Callable[..., ScriptedAdmin]) -> None:
    scripted(_metadata({}), _metadata({name: SIX for name in NAMES[1:]}))
    with pytest.raises(TopicError, match="not ready") as caught:
        ensure_topics(SETTINGS, timeout_s=0.3)
    assert f"{NAMES[0]}: not in the metadata yet" in str(caught.value)
    assert NAMES[1] not in str(caught.value)


def test_a_settled_topic_with_another_count_is_refused(
    scripted: Callable[..., ScriptedAdmin],
) -> None:
    existing = {name: SIX for name in NAMES} | {NAMES[0]: [1, 1, 1]}
    admin = scripted(_metadata(existing))
    with pytest.raises(TopicError, match="TMPMAIL_TOPIC_PARTITIONS") as caught:
        ensure_topics(SETTINGS, timeout_s=5)
    assert f"topic {NAMES[0]} has 3 partitions, expected 6" in str(caught.value)
    assert admin.created == []


def test_a_broker_that_never_registers_is_one_clear_error(
    scripted: Callable[..., ScriptedAdmin],
) -> None:
    scripted(_metadata({}, broker=False))
    with pytest.raises(TopicError, match="has not finished starting"):
        ensure_topics(SETTINGS, timeout_s=0.3)
    with pytest.raises(TopicError, match="has not finished starting"):
        cluster_id(SETTINGS, timeout_s=0.3)
