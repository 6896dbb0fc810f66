"""Whether a mailbox may be extended, and until when: a pure rule on settings.

A mailbox that has been used may be extended by the base lifetime
(``TMPMAIL_MAILBOX_TTL_DAYS``), never past ``TMPMAIL_MAILBOX_MAX_LIFETIME_DAYS`` from its
creation. Used means: it holds at least ``TMPMAIL_EXTEND_MIN_MESSAGES`` messages, or it
is older than ``TMPMAIL_EXTEND_MIN_AGE_DAYS`` and was visited in the last day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from schemas.settings import Settings
from store import Mailbox

RECENT_VISIT = timedelta(days=1)

ExtendRefusal = Literal["not_used_enough", "max_lifetime", "mailbox_ended"]


@dataclass(frozen=True, slots=True)
class Extension:
    """The answer: ``until`` when allowed, else ``reason`` (a code) and ``explanation``."""

    until: datetime | None
    reason: ExtendRefusal | None = None
    explanation: str = ""

    @property
    def allowed(self) -> bool:
        return self.until is not None


def decide_extension(
    mailbox: Mailbox, message_count: int, now: datetime, settings: Settings
) -> Extension:
    if mailbox.deleted or mailbox.expires_at <= now:
        return Extension(None, "mailbox_ended", "the mailbox has ended")
    latest = mailbox.created_at + settings.mailbox_max_lifetime
    until = min(mailbox.expires_at + settings.mailbox_ttl, latest)
    if until <= mailbox.expires_at:
        days = settings.mailbox_max_lifetime_days
        return Extension(None, "max_lifetime", f"a mailbox lives at most {days:g} days")
    visited = mailbox.visited_at is not None and now - mailbox.visited_at <= RECENT_VISIT
    old_enough = now - mailbox.created_at >= settings.extend_min_age
    if message_count >= settings.extend_min_messages or (old_enough and visited):
        return Extension(until)
    return Extension(
        None,
        "not_used_enough",
        f"a mailbox may be extended once it has received {settings.extend_min_messages} "
        f"messages, or after {settings.extend_min_age_days:g} days of use",
    )
