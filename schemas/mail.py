"""What a list line shows of one mail, defined once.

:class:`MailSummary` is what the parser reads out of the raw bytes for lists and live
push. Every other shape of a message extends it instead of repeating its fields:

* ``store.NewMessage`` and ``store.StoredMessage`` (the store keeps the summary whole:
  one JSON column on SQLite, the same fields in the MongoDB document);
* :class:`schemas.records.DeliveryEvent` (the live notice on Kafka);
* :class:`schemas.api.LiveMessage` and :class:`schemas.api.MessageSummaryPublic`.

A field added here therefore reaches the store, the delivery topic, the SSE events and
the list without touching any of them: only the parser has to fill it. Fields are
always optional with a default, so records and rows written before it stay readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class MailSummary(BaseModel):
    """Sender, subject, a text preview, the Message-ID, the problems the parser met, the
    first From address and whether there are attachments."""

    model_config = ConfigDict(frozen=True)

    sender: str = ""
    subject: str = ""
    preview: str = ""
    #: The ``Message-ID:`` header as written (without surrounding space), or "".
    message_id_header: str = ""
    parse_errors: tuple[str, ...] = ()
    #: The first ``From:`` address: its decoded display name and its address.
    from_name: str = ""
    from_address: str = ""
    #: Whether the mail has a part a reader would call an attachment (not an inline part).
    has_attachments: bool = False


#: The names of :class:`MailSummary`'s fields.
SUMMARY_FIELDS = frozenset(MailSummary.model_fields)


def summary_fields(value: MailSummary) -> dict[str, Any]:
    """The summary fields of ``value`` as keyword arguments for another shape."""
    return {name: getattr(value, name) for name in MailSummary.model_fields}


class MailAddress(BaseModel):
    """One address of a header, its display name decoded (RFC 2047, 2231, 6532; IDN)."""

    model_config = ConfigDict(frozen=True)

    name: str = ""
    address: str = ""


class AttachmentInfo(BaseModel):
    """One attachment or inline part, as the message document lists it. Its bytes are
    stored apart, under ``id`` (unique within the message)."""

    model_config = ConfigDict(frozen=True)

    id: str
    filename: str = ""
    content_type: str = "application/octet-stream"
    size: int = 0
    content_id: str = ""
    disposition: str = "attachment"
    sha256: str = ""


class ParsedMail(MailSummary):
    """Everything the parser (``mail/``) reads from the raw bytes, beyond the summary.

    The HTML body is the decoded text, never sanitised here: the API sanitises it when
    it serves it, so a sanitiser fix reaches mail already stored.
    """

    parser_version: int = 0
    date: datetime | None = None
    from_: tuple[MailAddress, ...] = Field(default=(), alias="from")
    to: tuple[MailAddress, ...] = ()
    cc: tuple[MailAddress, ...] = ()
    reply_to: tuple[MailAddress, ...] = ()
    text: str = ""
    html: str = ""
    attachments: tuple[AttachmentInfo, ...] = ()
    #: ``cid:`` of an inline part → its :attr:`AttachmentInfo.id`.
    cid_map: dict[str, str] = Field(default_factory=dict)
    #: The header fields in order, names as written, values decoded and capped.
    headers: tuple[tuple[str, str], ...] = ()
    list_unsubscribe: tuple[str, ...] = ()

    model_config = ConfigDict(frozen=True, populate_by_name=True)
