"""An asyncio face on confluent-kafka's producer: ``await send(...)`` resolves on the broker's ack.

The librdkafka producer is thread-safe; a daemon thread polls it so delivery callbacks
fire promptly. Callbacks queue their outcome, and the event loop is woken once for all
the outcomes that arrive together (one ``call_soon_threadsafe``, not one per record: each
wakes the loop through a pipe). Nothing blocks the event loop: ``produce`` only enqueues,
and a full local queue (``BufferError``) is retried with a short, bounded back-off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import KafkaError, Message, Producer

from schemas.records import Record
from schemas.topics import TopicBinding

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]
R = TypeVar("R", bound=Record)


class ProduceError(RuntimeError):
    """The broker did not acknowledge a record (timeout, broker down, record too large)."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True, slots=True)
class Ack:
    topic: str
    partition: int
    offset: int


class AsyncProducer:
    """One confluent-kafka producer for one process. Start it, ``await send``, stop it."""

    def __init__(self, config: dict[str, Any], *, buffer_retries: int = 200) -> None:
        self._config = {"error_cb": self._on_error, **config}
        self._buffer_retries = buffer_retries
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        self._settled: deque[tuple[asyncio.Future[Ack], KafkaError | None, Ack]] = deque()
        self._wake_pending = False

    async def start(self) -> None:
        if self._producer is not None:
            return
        self._producer = Producer(self._config)
        self._stopping.clear()
        self._poller = threading.Thread(
            target=self._poll_forever, name="kafka-producer-poll", daemon=True
        )
        self._poller.start()

    async def stop(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued (bounded) and stop; returns the records left unflushed."""
        producer, self._producer = self._producer, None
        if producer is None:
            return 0
        left = await asyncio.to_thread(producer.flush, timeout_s)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 5.0)
        if left:
            log.warning("producer stopped with %d records unacknowledged", left)
        return int(left)

    async def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> Ack:
        """Produce one record (``value`` ``None``: a tombstone) and wait for the broker's
        acknowledgement."""
        producer = self._require()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ack] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            # On librdkafka's side (the poll thread, or flush): queue, and wake the loop once.
            ack = Ack(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
            self._settled.append((future, err, ack))
            if not self._wake_pending:
                self._wake_pending = True
                loop.call_soon_threadsafe(self._settle_all)

        for _attempt in range(self._buffer_retries):
            try:
                producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=list(headers or ()),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                await asyncio.sleep(0.005)
            except Exception as exc:  # KafkaException: too large, unknown topic, ...
                raise _produce_error(exc) from exc
        else:
            raise ProduceError("local produce queue stayed full")
        return await future

    async def publish(
        self,
        topic: TopicBinding[R],
        record: R,
        *,
        body: bytes | None = None,
        key: bytes | None = None,
    ) -> Ack:
        """Publish one wire record on its topic (see :meth:`TopicBinding.encode`) and
        wait for the broker's acknowledgement. Every process publishes through this."""
        record_key, value, headers = topic.encode(record, body=body, key=key)
        return await self.send(topic.name, key=record_key, value=value, headers=headers)

    async def publish_tombstone(self, topic: TopicBinding[R], key: bytes) -> Ack:
        """Publish a tombstone (``key``, no value) on a compacted topic and wait for the
        ack: its readers forget ``key``, and compaction drops every record of it."""
        return await self.send(topic.name, key=key, value=None)

    async def publish_many(
        self, topic: TopicBinding[R], records: Sequence[tuple[R, bytes | None]]
    ) -> list[Ack]:
        """Publish ``(record, body)`` pairs and wait for every ack (raises the first failure)."""
        return list(
            await asyncio.gather(
                *(self.publish(topic, record, body=body) for record, body in records)
            )
        )

    def _settle_all(self) -> None:
        """On the loop: resolve every queued outcome (reset the flag first, so an outcome
        queued meanwhile schedules another call)."""
        self._wake_pending = False
        settled = self._settled
        while settled:
            _settle(*settled.popleft())

    def _require(self) -> Producer:
        if self._producer is None:
            raise ProduceError("producer is not started")
        return self._producer

    def _poll_forever(self) -> None:
        while not self._stopping.is_set():
            producer = self._producer
            if producer is None:
                break
            producer.poll(0.05)

    @staticmethod
    def _on_error(err: KafkaError) -> None:
        level = logging.ERROR if err.fatal() else logging.WARNING
        log.log(level, "kafka producer: %s", err.str())


def _settle(future: asyncio.Future[Ack], err: KafkaError | None, ack: Ack) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(
            ProduceError(f"not acknowledged: {err.str()}", retriable=err.retriable())
        )
    else:
        future.set_result(ack)


def _produce_error(exc: Exception) -> ProduceError:
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return ProduceError(str(exc))
    permanent = err.code() == KafkaError.MSG_SIZE_TOO_LARGE
    return ProduceError(err.str(), retriable=not permanent)
