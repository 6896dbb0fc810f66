"""Helpers both adapters share: millisecond UTC time, and the pieces a message is stored in
(raw bytes, the document's JSON, each attachment) in chunks of :data:`~store.port.CHUNK_SIZE`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from schemas.mail import ParsedMail
from schemas.records import json_bytes
from store.port import CHUNK_SIZE, NewMessage, StoreError

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


def read_now(now: datetime | None) -> datetime:
    """The ``now`` of a read, to the millisecond: as given, or the current UTC time."""
    return utc_ms(datetime.now(UTC) if now is None else now)


def split_chunks(raw: bytes) -> list[bytes]:
    """``raw`` in pieces of :data:`~store.port.CHUNK_SIZE` (none for empty bytes)."""
    return [raw[start : start + CHUNK_SIZE] for start in range(0, len(raw), CHUNK_SIZE)]


def document_chunks(message: NewMessage) -> list[bytes]:
    """The message's document as UTF-8 JSON, in chunks (none without a document)."""
    if message.document is None:
        return []
    return split_chunks(json_bytes(message.document, by_alias=True))


def attachment_chunks(message: NewMessage) -> Iterator[tuple[str, int, int, bytes]]:
    """``(attachment id, n, size, chunk)`` of every attachment; an empty one is one
    empty chunk, so that it is found."""
    listed = () if message.document is None else message.document.attachments
    for info, data in zip(listed, message.attachment_data, strict=True):
        for n, chunk in enumerate(split_chunks(data) or [b""]):
            yield info.id, n, len(data), chunk


def join_document(chunks: list[bytes], message_id: str) -> ParsedMail | None:
    """The document from its chunks in order; ``None`` for none."""
    if not chunks:
        return None
    try:
        return ParsedMail.model_validate_json(b"".join(chunks))
    except ValidationError as exc:
        raise StoreError(f"document of message {message_id} is incomplete or corrupt") from exc


def join_attachment(chunks: list[tuple[int, bytes]], message_id: str) -> bytes | None:
    """An attachment from its ``(size, chunk)`` pieces in order; ``None`` for none."""
    if not chunks:
        return None
    data = b"".join(chunk for _size, chunk in chunks)
    if len(data) != chunks[0][0]:
        raise StoreError(f"an attachment of message {message_id} is incomplete")
    return data
