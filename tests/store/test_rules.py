"""The store's write rule and take-over rules, pure (both adapters call these)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas.mail import AttachmentInfo, ParsedMail
from store import DEDUPE_WINDOW, NewMessage, WriteStatus
from store.rules import (
    KeyHolder,
    MessageFacts,
    StoredCopy,
    WriteDecision,
    address_is_free,
    decide_write,
    dedupe_key_expires_at,
    dedupe_key_moves,
    owner_of,
    reparsed,
    take_over_seq,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
WEEK = timedelta(days=7)


def _message(**fields: object) -> NewMessage:
    values: dict[str, object] = {
        "id": "m1",
        "address": "a@tmpmail.test",
        "ingest_id": "i1",
        "received_at": NOW,
        "expires_at": NOW + WEEK,
        "raw": b"x",
    }
    values.update(fields)
    return NewMessage(**values)  # type: ignore[arg-type]


LIVE = MessageFacts(existing=None, tombstoned=False, mailbox_created_at=NOW - MS)
STORED_V1 = StoredCopy(seq=4, expires_at=NOW + WEEK, parser_version=1)


def _holder(received_at: datetime, seq: int | None = 3, message_id: str = "first") -> KeyHolder:
    stored = None if seq is None else StoredCopy(seq, received_at + WEEK)
    return KeyHolder(message_id, received_at, stored)


def _keyed(holder: KeyHolder | None) -> MessageFacts:
    return MessageFacts(None, False, NOW - WEEK, key_holder=holder)


@pytest.mark.parametrize(
    ("facts", "message", "decision"),
    [
        (LIVE, _message(), WriteDecision("inserted")),
        (
            MessageFacts(StoredCopy(4, NOW), True, None),
            _message(expires_at=NOW),
            WriteDecision("existing", 4),
        ),
        (MessageFacts(None, True, None), _message(expires_at=NOW), WriteDecision("tombstoned")),
        (MessageFacts(None, False, None), _message(expires_at=NOW), WriteDecision("expired")),
        (MessageFacts(None, False, None), _message(), WriteDecision("no_mailbox")),
        (LIVE, _message(received_at=NOW - 2 * MS), WriteDecision("predates_mailbox")),
        (LIVE, _message(received_at=NOW - MS), WriteDecision("inserted")),  # the same ms
    ],
)
def test_decide_write_in_its_order(
    facts: MessageFacts, message: NewMessage, decision: WriteDecision
) -> None:
    assert decide_write(message, facts, NOW) == decision


@pytest.mark.parametrize(
    ("version", "stored", "status"),
    [
        (2, STORED_V1, "updated"),
        (1, STORED_V1, "existing"),
        (0, STORED_V1, "existing"),
        (2, StoredCopy(4, NOW, 1), "existing"),  # expired, not yet purged: left alone
        (2, StoredCopy(4, NOW + MS, 1), "updated"),
    ],
)
def test_a_newer_parser_updates_a_stored_message(
    version: int, stored: StoredCopy, status: WriteStatus
) -> None:
    facts = MessageFacts(stored, False, NOW - WEEK)
    assert decide_write(_message(parser_version=version), facts, NOW) == WriteDecision(status, 4)


@pytest.mark.parametrize(
    ("holder", "decision"),
    [
        (None, WriteDecision("inserted")),
        (_holder(NOW - DEDUPE_WINDOW), WriteDecision("duplicate", 3, "first")),
        (_holder(NOW - DEDUPE_WINDOW - MS), WriteDecision("inserted")),
        (_holder(NOW + DEDUPE_WINDOW), WriteDecision("duplicate", 3, "first")),
        (_holder(NOW - DEDUPE_WINDOW, seq=None), WriteDecision("duplicate", None, "first")),
        (_holder(NOW - DEDUPE_WINDOW, message_id="m1"), WriteDecision("inserted")),  # its own
    ],
)
def test_a_retry_within_the_window_is_a_duplicate(
    holder: KeyHolder | None, decision: WriteDecision
) -> None:
    assert decide_write(_message(dedupe_key="k"), _keyed(holder), NOW) == decision


def test_a_duplicate_carries_no_seq_once_the_first_copy_expired() -> None:
    expired = KeyHolder("first", NOW - DEDUPE_WINDOW, StoredCopy(3, NOW))
    later = _message(dedupe_key="k", expires_at=NOW + 2 * WEEK)
    assert decide_write(later, _keyed(expired), NOW) == WriteDecision("duplicate", None, "first")


def test_mail_without_a_key_is_never_a_duplicate() -> None:
    assert decide_write(_message(), _keyed(_holder(NOW)), NOW) == WriteDecision("inserted")


def test_a_key_names_the_latest_received_stored_copy() -> None:
    keyed = _message(dedupe_key="k")
    assert dedupe_key_moves(keyed, None)
    assert dedupe_key_moves(keyed, _holder(NOW - MS))
    assert not dedupe_key_moves(keyed, _holder(NOW))
    assert not dedupe_key_moves(keyed, _holder(NOW + MS))
    assert not dedupe_key_moves(keyed, _holder(NOW - MS, message_id="m1"))
    assert not dedupe_key_moves(_message(), None)
    assert dedupe_key_expires_at(NOW + WEEK) == NOW + WEEK + DEDUPE_WINDOW


def test_a_reparse_replaces_the_parse_and_keeps_the_rest() -> None:
    first = _message(subject="old", raw=b"first", dedupe_key="k")
    document = ParsedMail(subject="new", attachments=(AttachmentInfo(id="a1"),))
    again = _message(
        subject="new",
        raw=b"second",
        received_at=NOW + MS,
        parser_version=2,
        document=document,
        attachment_data=(b"data",),
    )
    merged = reparsed(first, again)
    assert (merged.subject, merged.document, merged.attachment_data, merged.parser_version) == (
        "new",
        document,
        (b"data",),
        2,
    )
    assert (merged.raw, merged.received_at, merged.dedupe_key) == (b"first", NOW, "k")


def test_attachment_data_must_match_the_document() -> None:
    document = ParsedMail(attachments=(AttachmentInfo(id="a1"), AttachmentInfo(id="a2")))
    with pytest.raises(ValueError, match="attachment"):
        _message(document=document, attachment_data=(b"only one",))
    with pytest.raises(ValueError, match="attachment"):
        _message(attachment_data=(b"no document",))
    twice = ParsedMail(attachments=(AttachmentInfo(id="a1"), AttachmentInfo(id="a1")))
    with pytest.raises(ValueError, match="repeat"):
        _message(document=twice, attachment_data=(b"1", b"2"))


def test_an_address_is_free_once_its_hold_has_passed() -> None:
    assert address_is_free(None, NOW)
    assert address_is_free(NOW, NOW)
    assert not address_is_free(NOW + MS, NOW)


def test_a_take_over_starts_above_every_seq_the_address_used() -> None:
    assert take_over_seq(None, None, 0) == 0
    assert take_over_seq(7, None, 0) == 7
    assert take_over_seq(None, 12, 0) == 12
    assert take_over_seq(3, 12, 20) == 20


def test_a_message_belongs_to_the_record_created_before_it_was_received() -> None:
    facts = replace(LIVE, mailbox_id="box-1")
    assert owner_of(_message(), facts) == "box-1"
    assert owner_of(_message(received_at=NOW - 2 * MS), facts) is None  # a previous owner's
    assert owner_of(_message(), replace(facts, mailbox_created_at=None)) is None
