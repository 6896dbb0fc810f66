"""Writing a batch so that no mail can stall the worker.

:func:`write_isolated` writes a batch in one store call. When that fails it tells apart:

* **the store is unavailable** (its ``ping`` fails too): nothing could be stored, so it
  waits, with capped back-off, and says so in :class:`WorkerHealth` (the worker is then
  not ready). This wait is bounded by the store's return and by the worker stopping;
  raw mail stays on Kafka meanwhile, uncommitted;
* **the store answers but refuses this batch**: the batch is retried a bounded number of
  times (a lock, a timeout), then each message is written on its own, so one bad
  message cannot hold back the others. A message still refused is written once more
  stripped to its raw bytes and a parse error; if even that fails it is given up, and
  the caller publishes it on ``tmpmail.dropped-mail.v1`` with the reason (it stays on the
  raw topic, so ``tmpmail replay`` can bring it back once the cause is fixed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from store import MailStore, NewMessage, StoreError, WriteResult

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how patiently, a refused batch is tried again."""

    batch_attempts: int = 3
    first_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    #: While the store is unreachable: the wait between two checks grows to this.
    unavailable_backoff_s: float = 5.0


@dataclass(slots=True)
class WorkerHealth:
    """What the readiness report needs to know beyond partitions and tables."""

    store_unavailable_since: float | None = None
    last_error: str = ""
    given_up: int = field(default=0)

    @property
    def store_ok(self) -> bool:
        return self.store_unavailable_since is None


@dataclass(slots=True)
class WriteOutcome:
    """One result per message of the batch (``None`` where it was given up), and why."""

    results: list[WriteResult | None]
    failures: dict[int, str] = field(default_factory=dict)


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


async def write_isolated(
    store: MailStore,
    batch: Sequence[NewMessage],
    now: datetime,
    *,
    policy: RetryPolicy,
    health: WorkerHealth,
    sleep: Sleep = asyncio.sleep,
) -> WriteOutcome:
    if not batch:
        return WriteOutcome([])
    delay = policy.first_backoff_s
    attempts = 0
    while True:
        try:
            results = await store.store_messages(batch, now)
        except StoreError as exc:
            if not await _reachable(store):
                await _wait_for_store(store, health, policy, sleep, describe(exc))
                continue  # the store is back: this attempt did not count
            attempts += 1
            health.last_error = describe(exc)
            if attempts >= policy.batch_attempts:
                break
            log.warning("store refused a batch of %d (try %d): %s", len(batch), attempts, exc)
            await sleep(delay)
            delay = min(delay * 2, policy.max_backoff_s)
        except Exception as exc:  # not the store's own error: something in the data
            health.last_error = describe(exc)
            log.warning("store write of a batch of %d failed: %s", len(batch), describe(exc))
            break
        else:
            return WriteOutcome(list(results))
    return await _one_by_one(store, batch, now, health)


async def _one_by_one(
    store: MailStore, batch: Sequence[NewMessage], now: datetime, health: WorkerHealth
) -> WriteOutcome:
    outcome = WriteOutcome([])
    for index, message in enumerate(batch):
        result, error = await _write_one(store, message, now)
        if result is None:
            stripped = _stripped(message, error)
            result, second = await _write_one(store, stripped, now)
            if result is None:
                outcome.failures[index] = f"{error}; raw only: {second}"
                health.given_up += 1
                log.error("gave up storing message %s: %s", message.id, outcome.failures[index])
            else:
                log.warning("stored message %s raw only: %s", message.id, error)
        outcome.results.append(result)
    return outcome


async def _write_one(
    store: MailStore, message: NewMessage, now: datetime
) -> tuple[WriteResult | None, str]:
    try:
        [result] = await store.store_messages([message], now)
    except Exception as exc:
        return None, describe(exc)
    return result, ""


def _stripped(message: NewMessage, error: str) -> NewMessage:
    """The message with nothing but its raw bytes, its sender and the reason. Its parser
    version is 0, so a replay with a working parser fills it in."""
    return NewMessage(
        id=message.id,
        address=message.address,
        ingest_id=message.ingest_id,
        received_at=message.received_at,
        expires_at=message.expires_at,
        raw=message.raw,
        sender=message.sender[:998],
        parse_errors=(f"stored raw only: the parsed message was refused ({error})"[:998],),
    )


async def _reachable(store: MailStore) -> bool:
    try:
        await store.ping()
    except Exception:
        return False
    return True


async def _wait_for_store(
    store: MailStore, health: WorkerHealth, policy: RetryPolicy, sleep: Sleep, error: str
) -> None:
    health.store_unavailable_since = health.store_unavailable_since or time.monotonic()
    health.last_error = error
    delay = policy.first_backoff_s
    log.error("the store is unavailable (%s); waiting for it, mail stays on Kafka", error)
    while True:
        await sleep(delay)
        if await _reachable(store):
            down = time.monotonic() - (health.store_unavailable_since or time.monotonic())
            log.warning("the store is back after %.1fs", down)
            health.store_unavailable_since = None
            return
        delay = min(delay * 2, policy.unavailable_backoff_s)
