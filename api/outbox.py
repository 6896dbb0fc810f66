"""The lifecycle outbox relay: publishes the store's pending lifecycle events.

One background task per API process (started in :mod:`api.app`). Each round reads the
oldest pending events (:meth:`MailStore.pending_lifecycle_events`), publishes them in
order on ``tmpmail.mailbox-lifecycle.v1`` and removes each one once the broker acked it.
A failure (broker or store) ends the round: the event stays in the outbox and the next
round, after a back-off doubling from :attr:`OutboxRelay.first_backoff_s` up to
:attr:`OutboxRelay.max_backoff_s`, tries it again; each publish is bounded by
``publish_timeout_s``. Rounds also run every ``poll_s`` and whenever a request
:meth:`~OutboxRelay.wake` s the relay after a change. Several replicas may publish the
same event: the topic is compacted and keyed by address, and the streams table takes
the latest, so a repeat is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.service import LifecyclePublisher
from store import MailStore

log = logging.getLogger(__name__)

BATCH = 100


class OutboxRelay:
    def __init__(
        self,
        store: MailStore,
        publisher: LifecyclePublisher,
        *,
        poll_s: float = 5.0,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        publish_timeout_s: float = 15.0,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self.poll_s = poll_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.publish_timeout_s = publish_timeout_s
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Consecutive failed rounds (0 once a round succeeds).
        self.failures = 0

    def wake(self) -> None:
        """Run a round soon (a request just wrote an event)."""
        self._wakeup.set()

    async def publish_pending(self) -> int:
        """One round: publish and remove pending events, oldest first, until none are
        left; return how many. Raises on the first failure (the event stays)."""
        published = 0
        while True:
            pending = await self._store.pending_lifecycle_events(BATCH)
            for entry in pending:
                async with asyncio.timeout(self.publish_timeout_s):
                    await self._publisher.publish_lifecycle(entry.event)
                await self._store.remove_lifecycle_event(entry.id)
                published += 1
            if len(pending) < BATCH:
                return published

    async def run(self) -> None:
        """Rounds for ever, with capped back-off after a failure (cancel to stop)."""
        while True:
            self._wakeup.clear()
            wait = self.poll_s
            try:
                published = await self.publish_pending()
                if published:
                    log.info("published %d lifecycle event(s) from the outbox", published)
                self.failures = 0
            except Exception as exc:  # store, broker or timeout: retried, with back-off
                self.failures += 1
                wait = min(self.max_backoff_s, self.first_backoff_s * 2 ** (self.failures - 1))
                log.warning(
                    "lifecycle outbox: publishing failed (%s, try %d); retrying in %.1fs",
                    exc or type(exc).__name__,
                    self.failures,
                    wait,
                )
                await asyncio.sleep(wait)  # back off even if woken meanwhile
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="lifecycle-outbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
