"""The mailbox contract over HTTP: create, the caller's mailbox, the browser's recent
ones, extend and delete. Thin: the logic is in :mod:`api.service`,
:mod:`api.mailbox_service` and :mod:`api.mailbox_policy`; the cookies in
:mod:`api.browser`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api import browser, mailbox_service, service
from api.deps import MailboxDep, RuntimeDep, current_mailbox
from api.errors import ERROR_RESPONSES, NotFound, RateLimited
from schemas.api import (
    ErrorBody,
    MailboxCreate,
    MailboxCreated,
    MailboxState,
    MailboxSwitch,
    RecentMailboxes,
)
from schemas.records import utcnow

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a retry can succeed.",
        "schema": {"type": "integer"},
    }
}
#: OpenAPI: every error these routes can answer, in the one error shape.
MAILBOX_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorBody, "description": "`forbidden_origin`: a cross-site request"},
    429: {
        "model": ErrorBody,
        "description": "`rate_limited`: too many creations or unknown tokens from this address",
        "headers": _RETRY_AFTER,
    },
}

mailbox_router = APIRouter(prefix="/api", tags=["mailboxes"], responses=MAILBOX_RESPONSES)


@mailbox_router.post(
    "/mailboxes", response_model=MailboxCreated, status_code=status.HTTP_201_CREATED
)
async def create_mailbox(
    request: Request, runtime: RuntimeDep, response: Response, body: MailboxCreate | None = None
) -> MailboxCreated:
    """Create a mailbox and make it the browser's current one (the others stay in the
    cookie until they expire). Returns its token once; it is also set as a cookie."""
    if wait := runtime.create_limiter.take(runtime.client_of(request)):
        raise RateLimited("too many mailboxes created from this address; slow down", wait)
    body = body or MailboxCreate()
    now = utcnow()
    created = await service.create_mailbox(
        runtime.store, runtime.settings, username=body.username, domain=body.domain, now=now
    )
    runtime.lifecycle_changed()
    mailbox = created.mailbox
    earlier = await mailbox_service.live_mailboxes(
        runtime.store, browser.remembered_tokens(request), now
    )
    tokens = [(created.token, mailbox.expires_at)] + [(t, m.expires_at) for t, m in earlier]
    browser.remember(request, response, runtime.settings, tokens, now)
    response.headers["Cache-Control"] = "no-store"
    return MailboxCreated(
        address=mailbox.address, expires_at=mailbox.expires_at, token=created.token
    )


@mailbox_router.get("/mailboxes", response_model=RecentMailboxes)
async def recent_mailboxes(request: Request, runtime: RuntimeDep) -> RecentMailboxes:
    """The browser's recent live mailboxes, newest first, from its cookie (a Bearer
    client gets just its own). Tokens are never listed."""
    if request.headers.get("authorization"):
        mailbox = await current_mailbox(request, runtime)
        return RecentMailboxes(mailboxes=mailbox_service.recent_entries([mailbox], mailbox.address))
    live = await mailbox_service.live_mailboxes(
        runtime.store, browser.remembered_tokens(request), utcnow()
    )
    current = request.cookies.get(browser.TOKEN_COOKIE)
    current_address = next((m.address for t, m in live if t == current), None)
    return RecentMailboxes(
        mailboxes=mailbox_service.recent_entries([m for _t, m in live], current_address)
    )


@mailbox_router.post("/mailboxes/current", response_model=RecentMailboxes)
async def switch_mailbox(
    request: Request, runtime: RuntimeDep, response: Response, body: MailboxSwitch
) -> RecentMailboxes:
    """Make one of the browser's recent mailboxes (by address) the current one again."""
    now = utcnow()
    live = await mailbox_service.live_mailboxes(
        runtime.store, browser.remembered_tokens(request), now
    )
    wanted = body.address.strip().lower()
    chosen = [(t, m) for t, m in live if m.address == wanted]
    if not chosen:
        raise NotFound("no such mailbox among this browser's recent ones")
    ordered = chosen + [(t, m) for t, m in live if m.address != wanted]
    browser.remember(
        request, response, runtime.settings, [(t, m.expires_at) for t, m in ordered], now
    )
    return RecentMailboxes(
        mailboxes=mailbox_service.recent_entries([m for _t, m in ordered], wanted)
    )


@mailbox_router.get("/mailbox", response_model=MailboxState)
async def get_mailbox(runtime: RuntimeDep, mailbox: MailboxDep) -> MailboxState:
    """The caller's mailbox: its times, how much mail it holds, and whether (and until
    when) it may be extended. 401 ``mailbox_expired``/``mailbox_deleted`` for a token
    whose mailbox has ended."""
    return await mailbox_service.mailbox_state(runtime.store, mailbox, utcnow(), runtime.settings)


@mailbox_router.post("/mailbox/extend", response_model=MailboxState)
async def extend_mailbox(runtime: RuntimeDep, mailbox: MailboxDep) -> MailboxState:
    """Extend the caller's mailbox by the base lifetime, if it has been used and is below
    the maximum lifetime; 409 with the reason (``not_used_enough``, ``max_lifetime``)."""
    now = utcnow()
    extended = await mailbox_service.extend_mailbox(runtime.store, mailbox, now, runtime.settings)
    runtime.lifecycle_changed()
    return await mailbox_service.mailbox_state(runtime.store, extended, now, runtime.settings)


@mailbox_router.delete("/mailbox", status_code=status.HTTP_204_NO_CONTENT)
async def delete_mailbox(request: Request, runtime: RuntimeDep, mailbox: MailboxDep) -> Response:
    """Delete the caller's mailbox and its mail. Its address stays held through the
    cooldown; its token then answers 401 ``mailbox_deleted``. The browser's cookie keeps
    its other recent mailboxes, the newest becoming current."""
    now = utcnow()
    await mailbox_service.delete_mailbox(runtime.store, mailbox, now, runtime.settings)
    runtime.lifecycle_changed()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    remembered = browser.remembered_tokens(request)
    if remembered:
        live = await mailbox_service.live_mailboxes(runtime.store, remembered, now)
        browser.remember(
            request, response, runtime.settings, [(t, m.expires_at) for t, m in live], now
        )
    return response
