"""Batches of whatever has arrived, without a timer: the raw-mail agent's batching.

:func:`arrived_batches` yields the first item that has not been yielded yet at once,
together with every item that queued behind it while the previous batch was being
processed (at most ``max_size``). So a lone mail goes on without waiting for company,
and under load the batches grow by themselves, as large as the time the previous one
took.

A task reads the source into a queue of ``max_size`` items while the consumer works on
a batch, so reading (Faust's per-event work on the event loop) overlaps with the batch's
waits on the parser and store threads. Once the queue is full the reader stops, which
holds back the source (Faust's own bounded buffers, then the consumer's flow control):
at most ``max_size`` items wait here, and at most ``max_size`` are being processed.

Faust's ``take(max_, within)`` instead waits up to ``within`` for each batch to fill,
whether or not more is coming (a lone mail waited half of it on average), and reads
nothing into its buffer while a batch is processed, so under load each batch was only
what its window could gather.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable
from typing import TypeVar

T = TypeVar("T")


async def arrived_batches(items: AsyncIterable[T], max_size: int) -> AsyncGenerator[list[T], None]:
    """Every item of ``items``, in order, in lists of 1 to ``max_size``.

    The list is yielded as soon as one item is there; it holds as many more as have
    queued by then. An error reading ``items`` is raised here once the items read before
    it have been yielded; the source ending ends the batches. Closing the generator (or
    cancelling its consumer) cancels the reader: items it had queued are dropped
    unyielded, which for Kafka records means unacknowledged, so they are read again.
    """
    if max_size < 1:
        raise ValueError("max_size must be at least 1")
    queue: asyncio.Queue[T] = asyncio.Queue(max_size)

    async def read() -> None:
        iterator = aiter(items)
        try:
            async for item in iterator:
                await queue.put(item)
        finally:
            if isinstance(iterator, AsyncGenerator):
                await iterator.aclose()  # Faust's stream knows it is no longer iterated

    reader = asyncio.ensure_future(read())
    try:
        while True:
            if queue.empty():
                if reader.done():
                    reader.result()  # raises the reader's error, if it had one
                    return
                getter = asyncio.ensure_future(queue.get())
                try:
                    await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
                if not getter.done() or getter.cancelled():
                    continue  # the reader ended: what it queued first, then its outcome
                batch = [getter.result()]
            else:
                batch = []
            while len(batch) < max_size and not queue.empty():
                batch.append(queue.get_nowait())
            yield batch
    finally:
        if reader.done():
            if not reader.cancelled():
                reader.exception()  # raised above, or moot now: retrieved either way
        else:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
