"""Helpers both adapters share: millisecond UTC time and splitting raw bytes into chunks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.port import CHUNK_SIZE

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond part dropped).

    Naive datetimes are refused: the port speaks aware UTC only.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store needs timezone-aware datetimes")
    return (value - EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return EPOCH + ms * _ONE_MS


def utc_ms(value: datetime) -> datetime:
    """``value`` in UTC, truncated to the millisecond (what both stores keep)."""
    return from_ms(to_ms(value))


def split_chunks(raw: bytes) -> list[bytes]:
    """``raw`` in pieces of :data:`~store.port.CHUNK_SIZE` (none for empty bytes)."""
    return [raw[start : start + CHUNK_SIZE] for start in range(0, len(raw), CHUNK_SIZE)]
