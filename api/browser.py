"""The browser's mailboxes, kept in two HttpOnly cookies (``SameSite=Strict``, path
``/api``; ``Secure`` when configured or when the request came over https):

* ``tmpmail_token``: the current mailbox's token (what ``MailboxDep`` reads);
* ``tmpmail_recent``: up to :data:`MAX_REMEMBERED` - 1 earlier tokens, most recent
  first, space-separated (commas are read too).

Tokens are never listed in a response; only their mailboxes' addresses are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from fastapi import Request, Response

from api.limits import came_over_https
from schemas.settings import Settings

TOKEN_COOKIE = "tmpmail_token"
RECENT_COOKIE = "tmpmail_recent"
MAX_REMEMBERED = 5
COOKIE_PATH = "/api"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def remembered_tokens(request: Request) -> list[str]:
    """The cookie's tokens, current first, without repeats or anything not token-shaped."""
    values = [request.cookies.get(TOKEN_COOKIE, "")]
    values += re.split(r"[\s,]+", request.cookies.get(RECENT_COOKIE, ""))
    tokens: list[str] = []
    for value in values:
        if _TOKEN_RE.fullmatch(value) and value not in tokens:
            tokens.append(value)
    return tokens[:MAX_REMEMBERED]


def cookie_secure(request: Request, settings: Settings) -> bool:
    peer = request.client.host if request.client else None
    return settings.cookie_secure or came_over_https(
        request.url.scheme, peer, request.headers, settings.trusted_proxies
    )


def remember(
    request: Request,
    response: Response,
    settings: Settings,
    tokens: Sequence[tuple[str, datetime]],
    now: datetime,
) -> None:
    """Set the cookies to ``tokens`` (token, expiry), current first; each cookie lasts as
    long as the longest-lived mailbox it holds."""
    secure = cookie_secure(request, settings)
    kept = list(tokens)[:MAX_REMEMBERED]
    if not kept:
        for name in (TOKEN_COOKIE, RECENT_COOKIE):
            response.delete_cookie(
                name, path=COOKIE_PATH, secure=secure, httponly=True, samesite="strict"
            )
        return
    (current, current_expiry), rest = kept[0], kept[1:]
    _set(response, TOKEN_COOKIE, current, current_expiry, now, secure)
    if rest:
        latest = max(expiry for _token, expiry in rest)
        _set(response, RECENT_COOKIE, " ".join(t for t, _e in rest), latest, now, secure)
    else:
        response.delete_cookie(
            RECENT_COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="strict"
        )


def _set(
    response: Response, name: str, value: str, expiry: datetime, now: datetime, secure: bool
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max(0, int((expiry - now).total_seconds())),
        httponly=True,
        samesite="strict",
        secure=secure,
        path=COOKIE_PATH,
    )
