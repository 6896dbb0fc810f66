"""Cross-site request refusal, for every route under ``/api``.

A state-changing request (POST, PUT, PATCH, DELETE), and the credentialed live-event
stream (``GET /api/events``), is refused with ``403 forbidden_origin`` when its
``Origin`` is present and is not one of ours (``settings.origins``), or, without an
``Origin``, when the browser says ``Sec-Fetch-Site: cross-site``. Clients that send
neither header (curl, scripts with a Bearer token) pass. The rule is
:func:`origin_refusal`; :class:`OriginGuard` applies it before any route runs.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response

GUARDED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GUARDED_READS = frozenset({"/api/events"})


def origin_refusal(
    method: str,
    path: str,
    origin: str | None,
    fetch_site: str | None,
    allowed: Collection[str],
) -> str | None:
    """Why this request is refused, or ``None`` when it may go on."""
    if not (path == "/api" or path.startswith("/api/")):
        return None
    if method.upper() not in GUARDED_METHODS and path not in GUARDED_READS:
        return None
    if origin is not None:
        if origin.strip().lower() in allowed:
            return None
        return f"requests from origin {origin.strip()[:100]!r} are not accepted"
    if (fetch_site or "").strip().lower() == "cross-site":
        return "cross-site requests are not accepted"
    return None


class OriginGuard:
    """ASGI middleware applying :func:`origin_refusal` (it does not buffer responses, so
    the SSE stream passes through untouched)."""

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            refusal = origin_refusal(
                scope["method"],
                scope["path"],
                headers.get("origin"),
                headers.get("sec-fetch-site"),
                self.allowed,
            )
            if refusal is not None:
                response = error_response(403, "forbidden_origin", refusal)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
