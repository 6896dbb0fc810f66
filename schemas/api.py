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
from pydantic.config import JsonDict

from schemas.mail import MailAddress, MailSummary
from schemas.records import DeliveryEvent

#: Example values for the OpenAPI (``/docs``), defined once and shared by the shapes.
_ADDRESS = "brave-otter-falcon-1234@tmpmail.test"
_CREATED_AT = "2025-01-06T09:30:00Z"
_EXPIRES_AT = "2025-01-21T09:30:00Z"
_LIVE_MESSAGE: JsonDict = {
    "sender": "Ann Example <ann@example.com>",
    "subject": "Your sign-in code",
    "preview": "Your code is 482913. It expires in 10 minutes.",
    "message_id_header": "<20250106093512.4821@mail.example.com>",
    "parse_errors": [],
    "from_name": "Ann Example",
    "from_address": "ann@example.com",
    "has_attachments": True,
    "id": "5f0c3a9d2b7e41c8a6d4e2f1b3c5a7d9",
    "seq": 7,
    "size": 48213,
    "received_at": "2025-01-06T09:35:12Z",
}
_MESSAGE_SUMMARY: JsonDict = {
    **_LIVE_MESSAGE,
    "expires_at": "2025-01-13T09:35:12Z",
    "seen": False,
}
_ATTACHMENT: JsonDict = {
    "id": "2",
    "filename": "invoice.pdf",
    "content_type": "application/pdf",
    "size": 40960,
    "content_id": "",
    "inline": False,
}


def _examples(*examples: JsonDict) -> ConfigDict:
    """A model's whole examples for the OpenAPI (each subclass states its own)."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class ErrorDetail(BaseModel):
    """What went wrong: a stable code to branch on, and a sentence for people."""

    model_config = _examples({"code": "mailbox_expired", "message": "this mailbox has expired"})

    code: str = Field(
        description="Stable and machine-readable; each response of each route lists the "
        "codes it can carry (e.g. unauthorized, mailbox_expired, not_found, rate_limited).",
        examples=["mailbox_expired"],
    )
    message: str = Field(
        description="For people; its wording may change. Never a path, a driver message "
        "or a stack trace.",
        examples=["this mailbox has expired"],
    )


class ErrorBody(BaseModel):
    """The one error shape of every route: ``{"error": {"code", "message"}}``."""

    model_config = _examples({"error": {"code": "not_found", "message": "no such message"}})

    error: ErrorDetail


class DomainList(BaseModel):
    """``GET /api/domains``."""

    model_config = _examples({"domains": ["tmpmail.test", "quickbox.test", "burner.test"]})

    domains: list[str]


class MailboxCreate(BaseModel):
    """``POST /api/mailboxes``. Both fields optional: with neither, a random address."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"username": "brave-otter", "domain": "tmpmail.test"}]},
    )

    username: str | None = Field(
        default=None,
        min_length=3,
        max_length=64,
        description="Local part: 3-64 of a-z 0-9 . _ - (lower-cased).",
        examples=["brave-otter"],
    )
    domain: str | None = Field(
        default=None, description="One of GET /api/domains.", examples=["tmpmail.test"]
    )


class MailboxPublic(BaseModel):
    model_config = _examples({"address": _ADDRESS, "expires_at": _EXPIRES_AT})

    address: str = Field(examples=[_ADDRESS])
    expires_at: datetime


class MailboxCreated(MailboxPublic):
    """Returned once, at creation: the token is never shown again (store keeps a hash)."""

    model_config = _examples(
        {
            "address": _ADDRESS,
            "expires_at": _EXPIRES_AT,
            "token": "q0yZ8c3T2mV1nE6rW4uJ9kB7xA5sD0fG3hL8pO2iU1e",
        }
    )

    token: str = Field(description="Bearer token for this mailbox; also set as a cookie.")


class MailboxState(MailboxPublic):
    """``GET /api/mailbox``: the caller's mailbox, and whether it may be extended."""

    model_config = _examples(
        {
            "address": _ADDRESS,
            "created_at": _CREATED_AT,
            "expires_at": _EXPIRES_AT,
            "message_count": 1,
            "can_extend": False,
            "extend_until": None,
            "reason": "not_used_enough",
            "reason_message": "a mailbox may be extended once it has received 3 messages, "
            "or after 2 days of use",
        }
    )

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

    model_config = _examples({"address": _ADDRESS, "expires_at": _EXPIRES_AT, "current": True})

    current: bool


class RecentMailboxes(BaseModel):
    """``GET /api/mailboxes``: newest first; only live ones."""

    model_config = _examples(
        {
            "mailboxes": [
                {"address": _ADDRESS, "expires_at": _EXPIRES_AT, "current": True},
                {
                    "address": "calm-heron-maple-5678@quickbox.test",
                    "expires_at": "2025-01-20T14:02:41Z",
                    "current": False,
                },
            ]
        }
    )

    mailboxes: list[RecentMailbox]


class MailboxSwitch(BaseModel):
    """``POST /api/mailboxes/current``: make one of the recent mailboxes the current one."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"address": _ADDRESS}]}
    )

    address: str = Field(max_length=320, examples=[_ADDRESS])


class LiveMessage(MailSummary):
    """The data of a ``message`` event on ``GET /api/events`` (its ``id:`` is ``seq``):
    the message's :class:`~schemas.mail.MailSummary` with its identity."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_LIVE_MESSAGE]})

    id: str
    seq: int
    size: int
    received_at: datetime

    @classmethod
    def from_delivery(cls, event: DeliveryEvent) -> LiveMessage:
        return cls.model_validate({**dict(event), "id": event.message_id})


class MessageSummaryPublic(LiveMessage):
    """A message as the list shows it."""

    model_config = _examples(_MESSAGE_SUMMARY)

    expires_at: datetime
    seen: bool = False


class AttachmentPublic(BaseModel):
    """One attachment or inline part of a message; its bytes are at
    ``GET /api/messages/{id}/attachments/{attachment id}``."""

    model_config = _examples(_ATTACHMENT)

    id: str
    filename: str
    content_type: str
    size: int
    content_id: str
    inline: bool = Field(description="An inline part (e.g. an image the HTML shows by cid:).")


class MessagePublic(MessageSummaryPublic):
    """``GET /api/messages/{id}``: the whole message. A message stored without its parse
    (raw bytes only) has its summary fields and empty bodies, addresses and lists."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    **_MESSAGE_SUMMARY,
                    "date": "2025-01-06T09:35:10Z",
                    "from": [{"name": "Ann Example", "address": "ann@example.com"}],
                    "to": [{"name": "", "address": _ADDRESS}],
                    "cc": [],
                    "reply_to": [],
                    "text": "Your code is 482913. It expires in 10 minutes.",
                    "has_html": True,
                    "remote_resources": 2,
                    "has_dark_mode": False,
                    "headers": [
                        ["From", "Ann Example <ann@example.com>"],
                        ["To", _ADDRESS],
                        ["Subject", "Your sign-in code"],
                    ],
                    "attachments": [_ATTACHMENT],
                    "list_unsubscribe": ["https://mail.example.com/unsubscribe?u=42"],
                }
            ]
        },
    )

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
    has_dark_mode: bool = Field(
        default=False,
        description="The HTML declares dark-mode support (a color-scheme meta or CSS, or "
        "prefers-color-scheme queries): it is shown dark with ?theme=dark.",
    )
    headers: list[tuple[str, str]] = Field(
        default_factory=list, description="[name, decoded value], in order."
    )
    attachments: list[AttachmentPublic] = Field(default_factory=list)
    list_unsubscribe: list[str] = Field(default_factory=list)


class MessageUpdate(BaseModel):
    """``PATCH /api/messages/{id}``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seen": True}]})

    seen: bool


class SignedUrl(BaseModel):
    """A short-lived URL that works without the token (for a sandboxed iframe)."""

    model_config = _examples(
        {
            "url": "/api/messages/5f0c3a9d2b7e41c8a6d4e2f1b3c5a7d9/html?remote=0&mailbox="
            "brave-otter-falcon-1234%40tmpmail.test&exp=1736156400&sig=Zk3...",
            "expires_at": "2025-01-06T09:40:00Z",
        }
    )

    url: str
    expires_at: datetime


class MessageList(BaseModel):
    """``GET /api/messages``: one page, newest first."""

    model_config = _examples({"messages": [_MESSAGE_SUMMARY], "next_cursor": "czc"})

    messages: list[MessageSummaryPublic]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


class Health(BaseModel):
    """``/healthz`` and ``/readyz``."""

    model_config = _examples(
        {
            "status": "ready",
            "store": "sqlite: ok",
            "delivery_consumer": "assigned",
            "partitions": [0, 1, 2, 3, 4, 5],
        }
    )

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
