"""streams.batches.arrived_batches: batches of what has arrived, no timer (pure, no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streams.batches import arrived_batches


class Source:
    """An async iterable fed by the test; counts what it has handed out."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.read = 0
        self.closed = False

    def feed(self, *items: object) -> None:
        for item in items:
            self.queue.put_nowait(item)

    async def __aiter__(self) -> AsyncIterator[object]:
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item is StopAsyncIteration:
                    return
                self.read += 1
                yield item
        finally:
            self.closed = True


async def settle() -> None:
    """Let the reader task run until it blocks."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_lone_item_comes_at_once_without_waiting_for_more() -> None:
    source = Source()
    batches = arrived_batches(source, 500)
    source.feed("a")
    # The source has nothing more and never ends: a timer-less batch still comes.
    assert await asyncio.wait_for(anext(batches), 5) == ["a"]
    await batches.aclose()


async def test_what_arrives_during_a_batch_is_the_next_batch() -> None:
    source = Source()
    batches = arrived_batches(source, 500)
    source.feed(1)
    assert await anext(batches) == [1]
    source.feed(2, 3, 4)  # arrives while the consumer "processes" batch [1]
    await settle()
    assert await anext(batches) == [2, 3, 4]
    await batches.aclose()


async def test_batches_keep_order_and_the_size_limit() -> None:
    source = Source()
    items = list(range(1_234))
    source.feed(*items, StopAsyncIteration)
    got = []
    async for batch in arrived_batches(source, 500):
        assert 1 <= len(batch) <= 500
        got.append(batch)
        await settle()
    assert [item for batch in got for item in batch] == items
    assert max(len(batch) for batch in got) == 500


async def test_the_reader_holds_back_once_max_size_wait() -> None:
    source = Source()
    source.feed(*range(2_000))
    batches = arrived_batches(source, 10)
    first = await anext(batches)
    await settle()
    # The batch being processed, 10 queued, and one the reader holds while it waits.
    assert source.read <= len(first) + 10 + 1
    assert await anext(batches) == list(range(len(first), len(first) + 10))
    await batches.aclose()


async def test_an_error_reading_comes_after_the_items_before_it() -> None:
    source = Source()
    source.feed(1, 2, RuntimeError("broker gone"))
    batches = arrived_batches(source, 500)
    got = []
    with pytest.raises(RuntimeError, match="broker gone"):
        async for batch in batches:
            got.extend(batch)
    assert got == [1, 2]


async def test_the_end_of_the_source_ends_the_batches() -> None:
    source = Source()
    source.feed("x", StopAsyncIteration)
    assert [batch async for batch in arrived_batches(source, 500)] == [["x"]]


async def test_closing_cancels_the_reader() -> None:
    source = Source()
    source.feed(1, 2, 3)
    batches = arrived_batches(source, 1)
    assert await anext(batches) == [1]
    await batches.aclose()
    assert source.closed  # its finally ran: the reader no longer holds the stream


async def test_cancelling_the_consumer_cancels_the_reader() -> None:
    source = Source()
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in arrived_batches(source, 500):
            started.set()

    task = asyncio.create_task(consume())
    source.feed(1)
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.closed


async def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        await anext(arrived_batches(Source(), 0))
