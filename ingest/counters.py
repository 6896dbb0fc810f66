"""Ingest's counters, in one place, for the operations issue to expose as metrics.

Plain integers on one object per process: the event loop is the only writer, so no
locks; :meth:`IngestCounters.snapshot` is what an exporter would read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: Upper bounds (seconds) of the produce-latency histogram's buckets; the last is +inf.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(slots=True)
class IngestCounters:
    sessions_opened: int = 0
    mails_accepted: int = 0
    bytes_received: int = 0
    bytes_accepted: int = 0
    temporary_failures: int = 0
    timeouts: int = 0
    #: Refusals by reply (code and enhanced code, e.g. ``550 5.7.1``).
    refusals: Counter[str] = field(default_factory=Counter)
    #: Time from the end of DATA to the broker's acks, as a histogram.
    produce_latency_buckets: list[int] = field(
        default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1)
    )
    produce_latency_sum_s: float = 0.0

    def refuse(self, reply: str) -> None:
        self.refusals[reply[:9].rstrip()] += 1

    def accepted(self, size: int, latency_s: float) -> None:
        self.mails_accepted += 1
        self.bytes_accepted += size
        self.produce_latency_sum_s += latency_s
        for index, bound in enumerate(LATENCY_BUCKETS_S):
            if latency_s <= bound:
                self.produce_latency_buckets[index] += 1
                return
        self.produce_latency_buckets[-1] += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "sessions_opened": self.sessions_opened,
            "mails_accepted": self.mails_accepted,
            "bytes_received": self.bytes_received,
            "bytes_accepted": self.bytes_accepted,
            "temporary_failures": self.temporary_failures,
            "timeouts": self.timeouts,
            "refusals": dict(self.refusals),
            "produce_latency_buckets": dict(
                zip(
                    [*map(str, LATENCY_BUCKETS_S), "+inf"],
                    self.produce_latency_buckets,
                    strict=True,
                )
            ),
            "produce_latency_sum_s": self.produce_latency_sum_s,
        }
