"""Mailbox lifecycle, tokens and message reads: the API's logic, without HTTP.

* Tokens carry 256 random bits; the store keeps only their SHA-256.
* A mailbox is written to the store (the source of truth) together with its lifecycle
  event, which waits in the store's outbox until :mod:`api.outbox` has published it on
  the lifecycle topic, from which the streams worker's table learns it.
* Random names are adjective-noun-noun-NNNN: :data:`RANDOM_NAME_SPACE` per domain.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from api.errors import Conflict, Invalid, MailboxDeleted, MailboxExpired, NotFound
from schemas.api import MessageSummaryPublic
from schemas.keys import AddressError, normalise_address
from schemas.records import LifecycleKind, MailboxLifecycleEvent
from schemas.settings import Settings
from store import Mailbox, MailStore, StoredMessage

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
RANDOM_NAME_ATTEMPTS = 8
USERNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{1,62})[a-z0-9]$")
#: Local parts nobody may take: they look like ours or like a site's role accounts.
RESERVED_USERNAMES = frozenset(
    {
        "abuse",
        "admin",
        "administrator",
        "hostmaster",
        "info",
        "mailer-daemon",
        "noc",
        "no-reply",
        "noreply",
        "postmaster",
        "root",
        "security",
        "support",
        "webmaster",
        "www",
        "tmpmail",
    }
)

_ADJECTIVES = (
    "amber",
    "brave",
    "calm",
    "clever",
    "cosmic",
    "crisp",
    "dusty",
    "eager",
    "fuzzy",
    "gentle",
    "golden",
    "happy",
    "jolly",
    "lucky",
    "mellow",
    "misty",
    "nimble",
    "quiet",
    "rapid",
    "rusty",
    "silver",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "witty",
    "zesty",
    "bold",
    "breezy",
    "cozy",
    "frosty",
    "lively",
    "agile",
    "bright",
    "cheery",
    "dapper",
    "fancy",
    "fresh",
    "glossy",
    "grand",
    "humble",
    "keen",
    "merry",
    "noble",
    "plucky",
    "proud",
    "sleek",
    "snowy",
)
_NOUNS = (
    "otter",
    "falcon",
    "maple",
    "comet",
    "harbor",
    "panda",
    "cedar",
    "pebble",
    "lantern",
    "meadow",
    "river",
    "badger",
    "willow",
    "canyon",
    "ember",
    "finch",
    "glacier",
    "heron",
    "island",
    "juniper",
    "koala",
    "lagoon",
    "marlin",
    "nebula",
    "orchid",
    "puffin",
    "quartz",
    "raven",
    "sparrow",
    "tundra",
    "walrus",
    "yak",
    "acorn",
    "beacon",
    "bison",
    "breeze",
    "cactus",
    "cobalt",
    "coral",
    "cricket",
    "dune",
    "fern",
    "fjord",
    "gecko",
    "grove",
    "hazel",
    "iris",
    "jaguar",
    "kestrel",
    "lemur",
    "lotus",
    "magpie",
    "moose",
    "nectar",
    "oak",
    "osprey",
    "pine",
    "prairie",
    "quail",
    "reef",
    "robin",
    "salmon",
    "thistle",
    "tulip",
)


#: How many random names there are per domain.
RANDOM_NAME_SPACE = len(_ADJECTIVES) * len(_NOUNS) ** 2 * 9000


class LifecyclePublisher(Protocol):
    async def publish_lifecycle(self, event: MailboxLifecycleEvent) -> None: ...


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def random_username() -> str:
    words = (secrets.choice(_ADJECTIVES), secrets.choice(_NOUNS), secrets.choice(_NOUNS))
    return f"{'-'.join(words)}-{secrets.randbelow(9000) + 1000}"


def validate_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.fullmatch(name) or ".." in name:
        raise Invalid(
            "username: 3-64 characters of a-z, 0-9, '.', '_' and '-', "
            "starting and ending with a letter or digit"
        )
    if name in RESERVED_USERNAMES:
        raise Invalid(f"username: {name!r} is reserved")
    return name


def choose_domain(domain: str | None, settings: Settings) -> str:
    if domain is None:
        return secrets.choice(settings.domains)
    try:
        normalised = normalise_address(f"x@{domain}").rpartition("@")[2]
    except AddressError:
        normalised = ""
    if normalised not in settings.domains:
        raise Invalid(f"domain: must be one of {', '.join(settings.domains)}")
    return normalised


@dataclass(frozen=True, slots=True)
class CreatedMailbox:
    mailbox: Mailbox
    token: str


def lifecycle_event(
    kind: LifecycleKind, mailbox: Mailbox, now: datetime, *, expires_at: datetime | None = None
) -> MailboxLifecycleEvent:
    return MailboxLifecycleEvent(
        kind=kind,
        address=mailbox.address,
        mailbox_id=mailbox.id,
        created_at=mailbox.created_at,
        expires_at=mailbox.expires_at if expires_at is None else expires_at,
        at=now,
    )


async def create_mailbox(
    store: MailStore,
    settings: Settings,
    *,
    username: str | None,
    domain: str | None,
    now: datetime,
) -> CreatedMailbox:
    """Create a mailbox (random readable name unless one is asked for) and announce it."""
    chosen_domain = choose_domain(domain, settings)
    wanted = validate_username(username) if username is not None else None
    names = [wanted] if wanted else [random_username() for _ in range(RANDOM_NAME_ATTEMPTS)]
    for name in names:
        token = new_token()
        expires_at = now + settings.mailbox_ttl
        mailbox = Mailbox(
            id=secrets.token_hex(12),
            address=normalise_address(f"{name}@{chosen_domain}"),
            token_hash=hash_token(token),
            created_at=now,
            expires_at=expires_at,
            purge_after=expires_at + settings.mailbox_cooldown,
        )
        if await store.create_mailbox(mailbox, now, event=lifecycle_event("created", mailbox, now)):
            return CreatedMailbox(mailbox, token)
    if wanted:
        raise Conflict(f"{wanted}@{chosen_domain} is taken; choose another username")
    raise Conflict("could not find a free address; try again")


async def authenticate(store: MailStore, token: str, now: datetime) -> Mailbox | None:
    """The live mailbox this token opens, or ``None`` for a token no record holds.

    A token whose record is kept through its cooldown raises :class:`MailboxDeleted` or
    :class:`MailboxExpired`, so the caller learns what happened to its mailbox.
    """
    if not token or len(token) > 256:
        return None
    mailbox = await store.get_mailbox_by_token(hash_token(token))
    if mailbox is None:
        return None
    if mailbox.deleted:
        raise MailboxDeleted("this mailbox was deleted")
    if mailbox.expires_at <= now:
        raise MailboxExpired("this mailbox has expired")
    return mailbox


def summary_public(message: StoredMessage) -> MessageSummaryPublic:
    return MessageSummaryPublic.model_validate(message)


async def list_page(
    store: MailStore, mailbox: Mailbox, *, limit: int, before_seq: int | None
) -> tuple[list[StoredMessage], int | None]:
    """One page, newest first, and the seq to continue before (``None`` on the last page)."""
    rows = await store.list_messages(mailbox.address, limit=limit + 1, before_seq=before_seq)
    page = rows[:limit]
    more = len(rows) > limit
    return page, (page[-1].seq if more and page else None)


async def get_message(store: MailStore, mailbox: Mailbox, message_id: str) -> StoredMessage:
    message = await store.get_message(mailbox.address, message_id)
    if message is None:
        raise NotFound("no such message")
    return message
