import pytest

from bus import TopicError, ensure_topics
from schemas.settings import Settings
from schemas.topics import topic_specs


def test_unreachable_kafka_is_one_clear_error() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(TopicError, match="TMPMAIL_KAFKA_BOOTSTRAP"):
        ensure_topics(settings, timeout_s=2)


def test_topics_exist_and_a_different_partition_count_is_refused(stack_sqlite: Settings) -> None:
    assert ensure_topics(stack_sqlite) == []  # `tmpmail up` created them all already
    other = stack_sqlite.model_copy(update={"topic_partitions": 3})
    with pytest.raises(TopicError, match="co-partitioning"):
        ensure_topics(other)
    assert {s.partitions for s in topic_specs(stack_sqlite)} == {stack_sqlite.topic_partitions}
