"""The store's write rule and take-over rules, pure (both adapters call these)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store import NewMessage
from store.rules import MessageFacts, address_is_free, decide_write, take_over_seq

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _message(**fields: object) -> NewMessage:
    values: dict[str, object] = {
        "id": "m1",
        "address": "a@tmpmail.test",
        "ingest_id": "i1",
        "received_at": NOW,
        "expires_at": NOW + timedelta(days=7),
        "raw": b"x",
    }
    values.update(fields)
    return NewMessage(**values)  # type: ignore[arg-type]


LIVE = MessageFacts(existing_seq=None, tombstoned=False, mailbox_created_at=NOW - MS)


@pytest.mark.parametrize(
    ("facts", "message", "status"),
    [
        (LIVE, _message(), "inserted"),
        (MessageFacts(4, True, None), _message(expires_at=NOW), "existing"),
        (MessageFacts(None, True, None), _message(expires_at=NOW), "tombstoned"),
        (MessageFacts(None, False, None), _message(expires_at=NOW), "expired"),
        (MessageFacts(None, False, None), _message(), "no_mailbox"),
        (LIVE, _message(received_at=NOW - 2 * MS), "predates_mailbox"),
        (LIVE, _message(received_at=NOW - MS), "inserted"),  # the same millisecond
    ],
)
def test_decide_write_in_its_order(facts: MessageFacts, message: NewMessage, status: str) -> None:
    assert decide_write(message, facts, NOW) == status


def test_an_address_is_free_once_its_hold_has_passed() -> None:
    assert address_is_free(None, NOW)
    assert address_is_free(NOW, NOW)
    assert not address_is_free(NOW + MS, NOW)


def test_a_take_over_starts_above_every_seq_the_address_used() -> None:
    assert take_over_seq(None, None, 0) == 0
    assert take_over_seq(7, None, 0) == 7
    assert take_over_seq(None, 12, 0) == 12
    assert take_over_seq(3, 12, 20) == 20
