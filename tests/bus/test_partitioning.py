"""One key lands on the same partition from every producer we run, and from Kafka's own.

confluent-kafka's default partitioner (consistent_random, CRC32) is not Java's murmur2;
with ``partitioner=murmur2_random`` (bus.config) it is. Faust writes through aiokafka,
whose default partitioner is murmur2, and writes a table's changelog to the partition of
the event it is processing: so raw mail, lifecycle events and the mailbox table only stay
co-partitioned if every producer hashes alike. This test proves it on the real broker.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from confluent_kafka.admin import AdminClient, NewTopic

from bus import AsyncProducer, producer_config
from schemas.keys import key_bytes, partition_for
from schemas.settings import Settings
from schemas.topics import MAILBOX_TABLE_CHANGELOG, RAW_MAIL_TOPIC
from tests.e2e.helpers import TopicTail, create_mailbox, send_mail

PARTITIONS = 6
KEYS = [f"user{i}+tag@Domain{i % 3}.test" for i in range(40)] + ["jürgen@bücher.test"]


def _create_topic(settings: Settings) -> str:
    name = f"tmpmail-test.partitioning.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])[
        name
    ].result(30)
    return name


def _java_partitions(settings: Settings, keys: list[bytes]) -> list[int]:
    java = shutil.which("java")
    assert java, "java is required (the broker runs on it)"
    libs = settings.state_dir / "kafka" / "libs"
    source = Path(__file__).with_name("PartitionOf.java")
    out = subprocess.run(
        [java, "-cp", f"{libs}/*", str(source), str(PARTITIONS), *(k.decode() for k in keys)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [int(line) for line in out.stdout.split()]


async def _confluent_partitions(
    settings: Settings, topic: str, keys: list[bytes], **override: str
) -> list[int]:
    producer = AsyncProducer(producer_config(settings, **override))
    await producer.start()
    try:
        acks = [await producer.send(topic, key=k, value=b"x") for k in keys]
    finally:
        await producer.stop()
    return [ack.partition for ack in acks]


async def _aiokafka_partitions(settings: Settings, topic: str, keys: list[bytes]) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, b"x", key=k)).partition for k in keys]
    finally:
        await producer.stop()


async def test_every_producer_puts_a_key_on_the_same_partition(stack_sqlite: Settings) -> None:
    settings = stack_sqlite
    keys = [key_bytes(k) for k in KEYS]
    topic = await asyncio.to_thread(_create_topic, settings)
    expected = [partition_for(k, PARTITIONS) for k in keys]

    confluent = await _confluent_partitions(settings, topic, keys)
    aiokafka = await _aiokafka_partitions(settings, topic, keys)  # Faust's client
    java = await asyncio.to_thread(_java_partitions, settings, keys)  # Kafka's own client

    assert confluent == expected
    assert aiokafka == expected
    assert java == expected
    assert len(set(expected)) == PARTITIONS  # the keys exercise every partition
    # The control: confluent-kafka's own default would break co-partitioning.
    default = await _confluent_partitions(settings, topic, keys, partitioner="consistent_random")
    assert default != expected


async def test_table_changelog_and_raw_mail_share_the_lifecycle_partition(
    stack_sqlite: Settings,
) -> None:
    settings = stack_sqlite
    changelog = await asyncio.to_thread(TopicTail, settings, MAILBOX_TABLE_CHANGELOG)
    raw = await asyncio.to_thread(TopicTail, settings, RAW_MAIL_TOPIC)
    try:
        async with httpx.AsyncClient(base_url=settings.http_url) as client:
            box = await create_mailbox(client)
        key = box.address.encode()
        _k, _v, table_partition = await asyncio.to_thread(
            changelog.wait_with_partition, lambda k, v: k == key, 60.0
        )
        await asyncio.to_thread(send_mail, settings, box.address, "co-partitioned")
        _k, _v, raw_partition = await asyncio.to_thread(
            raw.wait_with_partition, lambda k, v: k == key, 60.0
        )
    finally:
        changelog.close()
        raw.close()
    expected = partition_for(key, settings.topic_partitions)
    assert table_partition == raw_partition == expected
