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

from typing import Any

from pydantic import BaseModel, ConfigDict


class MailSummary(BaseModel):
    """Sender, subject, a text preview, the Message-ID and the problems the parser met."""

    model_config = ConfigDict(frozen=True)

    sender: str = ""
    subject: str = ""
    preview: str = ""
    #: The ``Message-ID:`` header as written (without surrounding space), or "".
    message_id_header: str = ""
    parse_errors: tuple[str, ...] = ()


#: The names of :class:`MailSummary`'s fields.
SUMMARY_FIELDS = frozenset(MailSummary.model_fields)


def summary_of(value: MailSummary) -> MailSummary:
    """The :class:`MailSummary` part of ``value`` (any model that extends it)."""
    if type(value) is MailSummary:
        return value
    return MailSummary.model_construct(**summary_fields(value))


def summary_fields(value: MailSummary) -> dict[str, Any]:
    """The summary fields of ``value`` as keyword arguments for another shape."""
    return {name: getattr(value, name) for name in MailSummary.model_fields}
