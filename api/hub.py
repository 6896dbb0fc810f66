"""Live fan-out: delivery events to the connected clients of one mailbox.

Each subscriber has a bounded queue. A client that falls behind is dropped, not
buffered forever: its stream ends, and the browser's EventSource reconnects with
``Last-Event-ID`` and catches up from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from schemas.records import DeliveryEvent

log = logging.getLogger(__name__)


class Subscription:
    def __init__(self, address: str, maxsize: int) -> None:
        self.address = address
        self.queue: asyncio.Queue[DeliveryEvent | None] = asyncio.Queue(maxsize)
        self.dropped = False

    def offer(self, event: DeliveryEvent) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self._close()

    def end(self) -> None:
        """End the stream now (its mailbox has ended): its reader gets the end marker."""
        if not self.dropped:
            self.dropped = True
            self._close()

    def _close(self) -> None:
        # Make room for the end-of-stream marker so the reader wakes up and stops.
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class LiveHub:
    """Subscriptions by mailbox address; ``publish`` never blocks."""

    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._by_address: defaultdict[str, set[Subscription]] = defaultdict(set)
        #: Kept as it changes: every connect reads it (a sum over mailboxes was O(mailboxes)).
        self._count = 0

    def subscribe(self, address: str) -> Subscription:
        sub = Subscription(address, self._queue_size)
        self._by_address[address].add(sub)
        self._count += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._by_address.get(sub.address)
        if subs is not None and sub in subs:
            subs.remove(sub)
            self._count -= 1
            if not subs:
                del self._by_address[sub.address]

    def publish(self, event: DeliveryEvent) -> None:
        for sub in tuple(self._by_address.get(event.address, ())):
            sub.offer(event)
            if sub.dropped:
                log.info("dropped a slow live client of %s", event.address)
                self.unsubscribe(sub)

    def close(self, address: str) -> None:
        """End every live stream of ``address`` here (its mailbox was deleted)."""
        for sub in tuple(self._by_address.get(address, ())):
            sub.end()
            self.unsubscribe(sub)

    def count(self, address: str) -> int:
        """Open subscriptions of one mailbox."""
        return len(self._by_address.get(address, ()))

    @property
    def subscriber_count(self) -> int:
        """Open subscriptions of this process."""
        return self._count
