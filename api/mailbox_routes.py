"""The mailbox contract over HTTP: create, the caller's mailbox, the browser's recent
ones, extend and delete. Thin: the logic is in :mod:`api.service`,
:mod:`api.mailbox_service` and :mod:`api.mailbox_policy`; the cookies in
:mod:`api.browser`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api import browser, mailbox_service, service
from api.deps import MailboxDep, RuntimeDep, current_mailbox
from api.errors import NotFound, RateLimited, error_responses
from schemas.api import (
    MailboxCreate,
    MailboxCreated,
    MailboxState,
    MailboxSwitch,
    RecentMailboxes,
)
from schemas.records import utcnow

mailbox_router = APIRouter(prefix="/api", tags=["mailboxes"])

#: OpenAPI: the cookies a response sets (:mod:`api.browser`).
_SETS_COOKIES = {
    "Set-Cookie": {
        "description": "`tmpmail_token` (the current mailbox) and `tmpmail_recent` (up to "
        "4 earlier ones): HttpOnly, SameSite=Strict, path `/api`.",
        "schema": {"type": "string"},
    }
}


@mailbox_router.post(
    "/mailboxes",
    response_model=MailboxCreated,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"description": "The mailbox, with its token.", "headers": _SETS_COOKIES},
        **error_responses(
            400,
            403,
            409,
            422,
            429,
            503,
            described={
                409: "`conflict`: the address is taken, or held through the cooldown of "
                "an earlier mailbox; choose another username (or, for a random name, retry).",
                429: "`rate_limited`: too many mailboxes created from this client; retry "
                "after `Retry-After` seconds.",
            },
            codes={
                422: [("invalid", "domain: must be one of tmpmail.test, quickbox.test")],
                429: [("rate_limited", "too many mailboxes created from this address; slow down")],
            },
        ),
    },
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


@mailbox_router.get(
    "/mailboxes",
    response_model=RecentMailboxes,
    responses=error_responses(
        401,
        429,
        503,
        described={
            401: "With `Authorization: Bearer`, as for every route that takes a token: "
            "`unauthorized`, `mailbox_expired`, `mailbox_deleted`. The cookie is never "
            "refused: its ended mailboxes are left out."
        },
    ),
)
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


@mailbox_router.post(
    "/mailboxes/current",
    response_model=RecentMailboxes,
    responses={
        200: {"description": "The browser's recent mailboxes.", "headers": _SETS_COOKIES},
        **error_responses(
            400,
            403,
            404,
            422,
            503,
            described={
                404: "`not_found`: no live mailbox with that address among this browser's "
                "recent ones (the `tmpmail_token` and `tmpmail_recent` cookies)."
            },
            codes={404: [("not_found", "no such mailbox among this browser's recent ones")]},
        ),
    },
)
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


@mailbox_router.get(
    "/mailbox", response_model=MailboxState, responses=error_responses(401, 429, 503)
)
async def get_mailbox(runtime: RuntimeDep, mailbox: MailboxDep) -> MailboxState:
    """The caller's mailbox: its times, how much mail it holds, and whether (and until
    when) it may be extended. 401 ``mailbox_expired``/``mailbox_deleted`` for a token
    whose mailbox has ended."""
    return await mailbox_service.mailbox_state(runtime.store, mailbox, utcnow(), runtime.settings)


@mailbox_router.post(
    "/mailbox/extend",
    response_model=MailboxState,
    responses=error_responses(
        401,
        403,
        409,
        429,
        503,
        described={
            409: "`not_used_enough` / `max_lifetime`: the mailbox may not be extended (the "
            "state of `GET /api/mailbox` says why and until when); `conflict`: it changed "
            "meanwhile, retry."
        },
        codes={
            409: [
                (
                    "not_used_enough",
                    "a mailbox may be extended once it has received 3 messages, "
                    "or after 2 days of use",
                ),
                ("max_lifetime", "a mailbox lives at most 60 days"),
                ("conflict", "the mailbox changed meanwhile; try again"),
            ]
        },
    ),
)
async def extend_mailbox(runtime: RuntimeDep, mailbox: MailboxDep) -> MailboxState:
    """Extend the caller's mailbox by the base lifetime, if it has been used and is below
    the maximum lifetime; 409 with the reason (``not_used_enough``, ``max_lifetime``)."""
    now = utcnow()
    extended = await mailbox_service.extend_mailbox(runtime.store, mailbox, now, runtime.settings)
    runtime.lifecycle_changed()
    return await mailbox_service.mailbox_state(runtime.store, extended, now, runtime.settings)


@mailbox_router.delete(
    "/mailbox",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        204: {
            "description": "Deleted. The cookies keep the browser's other live mailboxes.",
            "headers": _SETS_COOKIES,
        },
        **error_responses(401, 403, 429, 503),
    },
)
async def delete_mailbox(request: Request, runtime: RuntimeDep, mailbox: MailboxDep) -> Response:
    """Delete the caller's mailbox and its mail. Its address stays held through the
    cooldown; its token then answers 401 ``mailbox_deleted``. The browser's cookie keeps
    its other recent mailboxes, the newest becoming current."""
    now = utcnow()
    await mailbox_service.delete_mailbox(runtime.store, mailbox, now, runtime.settings)
    runtime.lifecycle_changed()
    runtime.hub.close(mailbox.address)  # its live streams here end now (elsewhere: soon)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    remembered = browser.remembered_tokens(request)
    if remembered:
        live = await mailbox_service.live_mailboxes(runtime.store, remembered, now)
        browser.remember(
            request, response, runtime.settings, [(t, m.expires_at) for t, m in live], now
        )
    return response
