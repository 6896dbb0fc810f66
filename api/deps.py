"""Dependencies that validate: the runtime objects, and the caller's mailbox.

``MailboxDep`` authenticates once for every route that needs a mailbox: the token comes
from ``Authorization: Bearer`` or from the HttpOnly cookie set at creation (a browser's
EventSource cannot send headers). A token never goes in a URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.errors import Unauthorized
from api.hub import LiveHub
from api.service import LifecyclePublisher, authenticate
from bus import BroadcastConsumer
from schemas.records import utcnow
from schemas.settings import Settings
from store import Mailbox, MailStore

TOKEN_COOKIE = "tmpmail_token"


@dataclass
class Runtime:
    """Everything a request may use, built once per process in ``api.app``."""

    settings: Settings
    store: MailStore
    hub: LiveHub
    publisher: LifecyclePublisher
    consumer: BroadcastConsumer


def get_runtime(request: Request) -> Runtime:
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


async def current_mailbox(request: Request, runtime: RuntimeDep) -> Mailbox:
    token = caller_token(request)
    if not token:
        raise Unauthorized("a mailbox token is required (Bearer header or cookie)")
    mailbox = await authenticate(runtime.store, token, utcnow())
    if mailbox is None:
        raise Unauthorized("unknown or expired mailbox token")
    return mailbox


MailboxDep = Annotated[Mailbox, Depends(current_mailbox)]
