"""A broadcast consumer: every process that runs one sees every record of a topic.

Each instance joins a consumer group of its own (``<prefix>-<random>``), starts at the
end of the topic and never commits: it is for live fan-out, where the store, not Kafka,
is the record of what happened. A thread polls librdkafka and hands what it has to the
event loop with one ``call_soon_threadsafe`` per batch; ``assigned`` is set once the
group has given it its partitions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

log = logging.getLogger(__name__)

RecordCallback = Callable[[bytes | None, bytes | None], None]
#: Records taken after a poll's first, if they are already there (no waiting).
DRAIN_BATCH = 499


class BroadcastConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        on_record: RecordCallback,
        *,
        group_prefix: str,
    ) -> None:
        self._config = {
            "group.id": f"{group_prefix}-{secrets.token_hex(6)}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "error_cb": self._on_error,
            **config,
        }
        self._topic = topic
        self._on_record = on_record
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._assigned = threading.Event()
        self.partitions: list[int] = []

    @property
    def group_id(self) -> str:
        return str(self._config["group.id"])

    @property
    def assigned(self) -> bool:
        return self._assigned.is_set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"consume-{self._topic}", daemon=True
        )
        self._thread.start()

    async def wait_assigned(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self._assigned.wait, timeout_s)

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
            self._thread = None

    def _run(self) -> None:
        consumer = Consumer(self._config)
        consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self._stopping.is_set():
                first = consumer.poll(0.2)
                if first is None:
                    continue
                # What else is there already, without waiting: one hand-off to the event
                # loop per batch, not per record (each costs a trip through the GIL).
                batch = [first, *consumer.consume(DRAIN_BATCH, 0)]
                records = []
                for msg in batch:
                    if msg.error() is not None:
                        log.warning("consumer %s: %s", self._topic, msg.error())
                        continue
                    records.append(msg)
                if records:
                    self._dispatch(records)
        finally:
            consumer.close()

    def _dispatch(self, records: list[Message]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, [(m.key(), m.value()) for m in records])

    def _deliver(self, records: list[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in records:
            self._on_record(key, value)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.partitions = sorted(p.partition for p in partitions)
        log.info("consumer %s assigned partitions %s", self._topic, self.partitions)
        if partitions:
            self._assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.clear()
        self.partitions = []

    @staticmethod
    def _on_error(err: KafkaError) -> None:
        log.warning("kafka consumer: %s", err.str())
