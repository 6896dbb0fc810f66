"""HTTP shapes of the public API, named by role.

Errors everywhere are ``{"error": {"code": ..., "message": ...}}``; lists of messages
are ``{"messages": [...], "next_cursor": ...}``, newest first, with an opaque keyset
cursor.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.mail import MailSummary
from schemas.records import DeliveryEvent


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unauthorized"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class DomainList(BaseModel):
    domains: list[str]


class MailboxCreate(BaseModel):
    """``POST /api/mailboxes``. Both fields optional: with neither, a random address."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(
        default=None,
        min_length=3,
        max_length=64,
        description="Local part: 3-64 of a-z 0-9 . _ - (lower-cased).",
    )
    domain: str | None = Field(default=None, description="One of GET /api/domains.")


class MailboxPublic(BaseModel):
    address: str
    expires_at: datetime


class MailboxCreated(MailboxPublic):
    """Returned once, at creation: the token is never shown again (store keeps a hash)."""

    token: str = Field(description="Bearer token for this mailbox; also set as a cookie.")


class LiveMessage(MailSummary):
    """The data of a ``message`` event on ``GET /api/events`` (its ``id:`` is ``seq``):
    the message's :class:`~schemas.mail.MailSummary` with its identity."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    size: int
    received_at: datetime

    @classmethod
    def from_delivery(cls, event: DeliveryEvent) -> LiveMessage:
        return cls.model_validate({**dict(event), "id": event.message_id})


class MessageSummaryPublic(LiveMessage):
    """A message as the list shows it."""

    expires_at: datetime
    seen: bool = False


class MessageList(BaseModel):
    messages: list[MessageSummaryPublic]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


class Health(BaseModel):
    status: str
    store: str
    delivery_consumer: str
    partitions: list[int] = Field(default_factory=list)


class CursorError(ValueError):
    """A cursor we did not issue."""


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("malformed cursor") from None
    digits = text[1:]
    if not text.startswith("s") or not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise CursorError("malformed cursor")  # "²".isdigit() is True: ASCII digits only
    return int(digits)
