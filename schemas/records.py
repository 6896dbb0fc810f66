"""Wire records that cross a process boundary on Kafka, each versioned with its topic.

* :class:`RawMailEnvelope` travels in the Kafka headers of a ``tmpmail.raw-mail.v1``
  record (header :data:`ENVELOPE_HEADER`); the record's value is the exact bytes received,
  with our ``Received:`` line prepended, never decoded and re-encoded.
* :class:`MailboxLifecycleEvent` is the value of ``tmpmail.mailbox-lifecycle.v1``.
* :class:`DeliveryEvent` is the value of ``tmpmail.delivery.v1``.
* :class:`DroppedMail` is the value of ``tmpmail.dropped-mail.v1``.

Consumers validate every record with ``Model.from_bytes``; a record that fails raises
:class:`RecordError` with the reason, to be recorded and never silently skipped.

**Evolving a record.** Topics keep old records for days (raw mail for 8), so a record
type changes only in ways both sides can take:

* a new field is optional, with a default: old records still validate;
* readers ignore fields they do not know (``extra="ignore"``): a newer writer's records
  still validate under older code;
* anything else (a field removed, renamed or retyped, a new meaning) is a new record
  version in a new topic (``.v2``), and both topics are read until the old one drains.

Topics, keys and the record type of each are bound in :mod:`schemas.topics`.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.keys import normalise_address
from schemas.mail import MailSummary

ENVELOPE_HEADER = "tmpmail-envelope"


class RecordError(ValueError):
    """A Kafka record that does not match its schema."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_ingest_id() -> str:
    """A unique, time-ordered id for one accepted mail (48-bit ms clock + 80 random bits)."""
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{os.urandom(10).hex()}"


def message_id_for(ingest_id: str, recipient: str) -> str:
    """The stored message's id: derived from the ingest id and the normalised recipient.

    Redelivery and replay of the same raw record therefore land on the same document.
    """
    digest = hashlib.blake2b(
        f"{ingest_id}\x00{normalise_address(recipient)}".encode(), digest_size=16
    )
    return digest.hexdigest()


def json_bytes(model: BaseModel, *, by_alias: bool = False) -> bytes:
    """``model`` as UTF-8 JSON: the serializer's own bytes (``model_dump_json()`` decodes
    them to a str, which every caller then encoded again)."""
    return model.__pydantic_serializer__.to_json(model, by_alias=by_alias)


class Record(BaseModel):
    """A versioned wire record: JSON bytes, validated on the way in."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return json_bytes(self)

    @classmethod
    def from_bytes(cls, data: bytes | str | None) -> Self:
        if data is None:
            raise RecordError(f"{cls.__name__}: missing value")
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise RecordError(f"{cls.__name__}: {exc.errors()[0]['msg']}") from None


class RawMailEnvelope(Record):
    """The SMTP envelope of one raw-mail record (one record per accepted recipient)."""

    v: Literal[1] = 1
    ingest_id: str = Field(min_length=8, max_length=64)
    sender: str = Field(description="MAIL FROM, as given ('' for the null sender).")
    recipient: str = Field(description="RCPT TO, as given.")
    client_address: str
    helo: str = ""
    tls: bool = False
    received_at: datetime
    body_sha256: str = Field(
        default="",
        description="SHA-256 of the body as received (after dot-unstuffing, before our "
        "Received: line): a sender's retry of the same mail under a new ingest id has it too.",
    )
    recipients: int = Field(default=1, ge=1, description="How many recipients the mail had.")

    @field_validator("received_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def mailbox_key(self) -> str:
        return normalise_address(self.recipient)

    @property
    def message_id(self) -> str:
        return message_id_for(self.ingest_id, self.recipient)

    def dedupe_key(self, message_id_header: str) -> str:
        """What makes a sender's retry the same mail: its Message-ID and body digest.

        A sender that got 451 retries under a new ingest id, though some of its records
        may have reached the log; the store keeps one copy per key within 24 hours. Mail
        without a Message-ID (load generators send the same bytes again and again) has no
        key and is never deduplicated.
        """
        if not (self.body_sha256 and message_id_header):
            return ""
        digest = hashlib.blake2b(
            f"{message_id_header}\x00{self.body_sha256}".encode(), digest_size=16
        )
        return digest.hexdigest()

    @classmethod
    def from_headers(
        cls, headers: list[tuple[str, bytes]] | dict[str, bytes] | None
    ) -> RawMailEnvelope:
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        for name, value in items:
            if name == ENVELOPE_HEADER:
                return cls.from_bytes(value)
        raise RecordError(f"raw-mail record has no {ENVELOPE_HEADER} header")


LifecycleKind = Literal["created", "extended", "deleted"]


class MailboxLifecycleEvent(Record):
    """A change to one mailbox, keyed by its address; the streams table is built from these."""

    v: Literal[1] = 1
    kind: LifecycleKind
    address: str
    mailbox_id: str
    created_at: datetime
    expires_at: datetime
    at: datetime = Field(default_factory=utcnow)


class DeliveryEvent(Record, MailSummary):
    """A compact notice that one message was stored, for live push (keyed by address).

    It carries the message's :class:`~schemas.mail.MailSummary`, whatever fields that has.
    """

    v: Literal[1] = 1
    address: str
    message_id: str
    seq: int = Field(ge=1)
    size: int = 0
    received_at: datetime
    #: The id of the mailbox record the message was stored under (the store's answer):
    #: a live stream of another mailbox of this address (a previous owner's) ends instead
    #: of passing it on. Empty in records written before it existed.
    mailbox_id: str = ""


DropReason = Literal[
    "unknown_mailbox",
    "expired_mailbox",
    "predates_mailbox",
    "bad_envelope",
    "store_failed",
    "worker_error",
]


class DroppedMail(Record):
    """Mail that was not stored, and why. Published to ``tmpmail.dropped-mail.v1``."""

    v: Literal[1] = 1
    reason: DropReason
    detail: str = ""
    recipient: str = ""
    ingest_id: str = ""
    source_partition: int
    source_offset: int
    size: int = 0
    at: datetime = Field(default_factory=utcnow)
