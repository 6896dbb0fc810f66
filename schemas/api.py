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

from schemas.mail import MailAddress, MailSummary
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


class MailboxState(MailboxPublic):
    """``GET /api/mailbox``: the caller's mailbox, and whether it may be extended."""

    created_at: datetime
    message_count: int
    can_extend: bool
    extend_until: datetime | None = Field(
        description="The new expiry an extension would give; null when it is not allowed."
    )
    reason: str | None = Field(
        default=None,
        description="Why it may not be extended: not_used_enough, max_lifetime.",
        examples=["not_used_enough"],
    )
    reason_message: str | None = None


class RecentMailbox(MailboxPublic):
    """One of a browser's recent mailboxes (its token stays in the cookie)."""

    current: bool


class RecentMailboxes(BaseModel):
    """``GET /api/mailboxes``: newest first; only live ones."""

    mailboxes: list[RecentMailbox]


class MailboxSwitch(BaseModel):
    """``POST /api/mailboxes/current``: make one of the recent mailboxes the current one."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320)


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


class AttachmentPublic(BaseModel):
    """One attachment or inline part of a message; its bytes are at
    ``GET /api/messages/{id}/attachments/{attachment id}``."""

    id: str
    filename: str
    content_type: str
    size: int
    content_id: str
    inline: bool = Field(description="An inline part (e.g. an image the HTML shows by cid:).")


class MessagePublic(MessageSummaryPublic):
    """``GET /api/messages/{id}``: the whole message. A message stored without its parse
    (raw bytes only) has its summary fields and empty bodies, addresses and lists."""

    model_config = ConfigDict(populate_by_name=True)

    date: datetime | None = None
    from_: list[MailAddress] = Field(default_factory=list, alias="from")
    to: list[MailAddress] = Field(default_factory=list)
    cc: list[MailAddress] = Field(default_factory=list)
    reply_to: list[MailAddress] = Field(default_factory=list)
    text: str = ""
    has_html: bool = False
    remote_resources: int = Field(
        default=0, description="Remote resources the HTML would load (blocked unless ?remote=1)."
    )
    headers: list[tuple[str, str]] = Field(
        default_factory=list, description="[name, decoded value], in order."
    )
    attachments: list[AttachmentPublic] = Field(default_factory=list)
    list_unsubscribe: list[str] = Field(default_factory=list)


class MessageUpdate(BaseModel):
    """``PATCH /api/messages/{id}``."""

    model_config = ConfigDict(extra="forbid")

    seen: bool


class SignedUrl(BaseModel):
    """A short-lived URL that works without the token (for a sandboxed iframe)."""

    url: str
    expires_at: datetime


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
