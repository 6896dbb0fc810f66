"""Dependencies that validate: the runtime objects, and the caller's mailbox.

``MailboxDep`` authenticates once for every route that needs a mailbox: the token comes
from ``Authorization: Bearer`` or from the HttpOnly cookie set at creation (a browser's
EventSource cannot send headers). A token never goes in a URL.

A token no record holds counts against the client's failed-token budget
(``TMPMAIL_TOKEN_FAILURES_PER_MINUTE``, then 429); a token whose mailbox expired or was
deleted is 401 ``mailbox_expired`` / ``mailbox_deleted``. A visit is written at most
once per :data:`VISIT_WRITE_INTERVAL`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from api.browser import TOKEN_COOKIE
from api.errors import RateLimited, Unauthorized
from api.hub import LiveHub
from api.limits import RateLimiter, client_address
from api.outbox import OutboxRelay
from api.service import LifecyclePublisher, authenticate
from bus import BroadcastConsumer
from schemas.records import utcnow
from schemas.settings import Settings
from store import Mailbox, MailStore, StoreError

__all__ = ["TOKEN_COOKIE", "MailboxDep", "Runtime", "RuntimeDep"]

log = logging.getLogger(__name__)

VISIT_WRITE_INTERVAL = timedelta(minutes=1)


@dataclass
class Runtime:
    """Everything a request may use, built once per process in ``api.app``."""

    settings: Settings
    store: MailStore
    hub: LiveHub
    publisher: LifecyclePublisher
    consumer: BroadcastConsumer
    #: Publishes the store's lifecycle outbox; ``None`` where nothing runs it (tests).
    relay: OutboxRelay | None = None
    create_limiter: RateLimiter = field(init=False)
    token_failure_limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.create_limiter = RateLimiter(self.settings.create_rate_per_minute)
        self.token_failure_limiter = RateLimiter(self.settings.token_failures_per_minute)

    def client_of(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers, self.settings.trusted_proxies)

    def lifecycle_changed(self) -> None:
        """A request wrote a lifecycle event: let the relay publish it now."""
        if self.relay is not None:
            self.relay.wake()


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per
    # request for an attribute read.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def caller_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("use 'Authorization: Bearer <token>'")
        return value.strip()
    return request.cookies.get(TOKEN_COOKIE)


#: OpenAPI: the two ways a caller names its mailbox, either one (documentation: neither
#: raises; :func:`caller_token` reads both and answers the errors).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The mailbox token from `POST /api/mailboxes`: `Authorization: Bearer <token>`.",
)
COOKIE = APIKeyCookie(
    name=TOKEN_COOKIE,
    auto_error=False,
    scheme_name="cookie",
    description="The HttpOnly cookie `POST /api/mailboxes` sets (what the page and its "
    "EventSource send).",
)


async def current_mailbox(
    request: Request,
    runtime: RuntimeDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    _cookie: Annotated[str | None, Security(COOKIE)] = None,
) -> Mailbox:
    token = caller_token(request)
    if not token:
        raise Unauthorized("a mailbox token is required (Bearer header or cookie)")
    client = runtime.client_of(request)
    limiter = runtime.token_failure_limiter
    if wait := limiter.retry_after(client):
        raise RateLimited("too many unknown tokens from this address; slow down", wait)
    now = utcnow()
    mailbox = await authenticate(runtime.store, token, now)
    if mailbox is None:
        limiter.take(client)
        raise Unauthorized("unknown mailbox token")
    return await _visited(runtime.store, mailbox, now)


async def _visited(store: MailStore, mailbox: Mailbox, now: datetime) -> Mailbox:
    """``mailbox`` as visited at ``now``, written when the last write is a minute old."""
    if mailbox.visited_at is not None and now - mailbox.visited_at < VISIT_WRITE_INTERVAL:
        return mailbox
    try:
        await store.touch_mailbox(mailbox.address, now)
    except StoreError as exc:  # a visit not recorded must not fail the request
        log.warning("recording a visit to %s: %s", mailbox.address, exc)
        return mailbox
    return dataclasses.replace(mailbox, visited_at=now)


MailboxDep = Annotated[Mailbox, Depends(current_mailbox)]
