"""Abuse limits, in memory per process: token buckets per client address, and who the
client is behind a trusted proxy.

Each bucket holds at most ``per_minute`` tokens and refills at ``per_minute`` a minute;
a request that finds it empty is refused with the seconds until the next token. At most
``max_clients`` buckets are kept: the oldest go first, so memory stays bounded (a client
evicted that way starts again with a full bucket, which only errs on the lenient side).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

MAX_CLIENTS = 50_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per key (a client address)."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._rate_per_s = per_minute / 60.0
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` has a token (0.0: it has one now); takes nothing."""
        bucket = self._refilled(key)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self._rate_per_s

    def take(self, key: str) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        wait = self.retry_after(key)
        if wait == 0.0:
            self._buckets[key].tokens -= 1
        return wait

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(self.per_minute), bucket.tokens + elapsed * self._rate_per_s)
            bucket.at = now
            self._buckets.move_to_end(key)
        return bucket


def client_address(
    peer: str | None, headers: Mapping[str, str], trusted_proxies: Collection[str]
) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the last
    address in ``X-Forwarded-For`` that is not one of the trusted proxies."""
    address = peer or "unknown"
    if address not in trusted_proxies:
        return address
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return _valid_ip(hop) or address
    return address


def came_over_https(
    scheme: str, peer: str | None, headers: Mapping[str, str], trusted_proxies: Collection[str]
) -> bool:
    """Whether the browser's request was https: ours, or a trusted proxy's word for it."""
    if scheme == "https":
        return True
    if peer is None or peer not in trusted_proxies:
        return False
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https"


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
