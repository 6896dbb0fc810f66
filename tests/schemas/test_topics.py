from schemas.settings import Settings
from schemas.topics import (
    DELIVERY_TOPIC,
    DROPPED_MAIL_TOPIC,
    MAILBOX_LIFECYCLE_TOPIC,
    MAILBOX_TABLE_CHANGELOG,
    RAW_MAIL_TOPIC,
    topic_specs,
)
from streams.app import build_app


def test_every_topic_has_the_configured_partition_count() -> None:
    specs = {spec.name: spec for spec in topic_specs(Settings(topic_partitions=6))}
    assert set(specs) == {
        RAW_MAIL_TOPIC,
        MAILBOX_LIFECYCLE_TOPIC,
        DELIVERY_TOPIC,
        DROPPED_MAIL_TOPIC,
        MAILBOX_TABLE_CHANGELOG,
    }
    assert {spec.partitions for spec in specs.values()} == {6}
    assert all(name.endswith(".v1") for name in specs if name.startswith("tmpmail."))


def test_retention_and_compaction() -> None:
    specs = {spec.name: spec for spec in topic_specs(Settings(raw_mail_retention_days=3))}
    assert specs[RAW_MAIL_TOPIC].config["retention.ms"] == str(3 * 86_400_000)
    assert specs[MAILBOX_LIFECYCLE_TOPIC].compacted
    assert specs[MAILBOX_TABLE_CHANGELOG].compacted
    assert not specs[RAW_MAIL_TOPIC].compacted
    default = {spec.name: spec for spec in topic_specs(Settings())}
    assert default[RAW_MAIL_TOPIC].config["retention.ms"] == str(8 * 86_400_000)
    # A 10 MiB mail plus our Received: line and envelope header fits in one record.
    assert int(default[RAW_MAIL_TOPIC].config["max.message.bytes"]) > 10 * 1024 * 1024


def test_faust_uses_exactly_the_topics_we_create() -> None:
    settings = Settings(topic_partitions=6)
    app = build_app(settings, store=None, producer=None)  # type: ignore[arg-type]  # nothing connects
    table = app.tables["mailboxes_by_address"]
    assert table.changelog_topic.get_topic_name() == MAILBOX_TABLE_CHANGELOG
    assert table.partitions == 6
    assert app.conf.web_enabled is False
    assert app.conf.topic_allow_declare is False and app.conf.topic_disable_leader is True
    sources = {topic for agent in app.agents.values() for topic in agent.channel.topics}
    assert sources == {RAW_MAIL_TOPIC, MAILBOX_LIFECYCLE_TOPIC}
