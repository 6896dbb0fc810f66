"""The API's exception tree, mapped to one JSON error shape in one place.

    ApiError (status, code, message)
    ├── Unauthorized   401  no token, or not a live mailbox's token
    │   ├── MailboxExpired  401  mailbox_expired: the token's mailbox has expired
    │   └── MailboxDeleted  401  mailbox_deleted: its owner deleted it
    ├── ForbiddenOrigin 403 forbidden_origin: a state-changing request from another site
    ├── NotFound       404  nothing of yours with that id
    ├── Conflict       409  the address is taken (or cooling down)
    │   └── NotExtendable   409  the mailbox may not be extended (code: the reason)
    ├── Invalid        422  the request is well-formed JSON but not acceptable
    ├── RateLimited    429  rate_limited: too many requests from this client (Retry-After)
    └── Unavailable    503  a dependency (store, broker) is down: retry

Outside the tree, mapped here too: ``store.StoreError`` and ``bus.ProduceError`` are 503
``unavailable``; validation errors and Starlette's own HTTP errors keep their status; any
other exception is a 500 ``internal`` in the same JSON shape. No response carries a path,
a driver message or a stack trace: those go to the log.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus import ProduceError
from schemas.api import ErrorBody, ErrorDetail
from store import StoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class MailboxExpired(Unauthorized):
    code = "mailbox_expired"


class MailboxDeleted(Unauthorized):
    code = "mailbox_deleted"


class ForbiddenOrigin(ApiError):
    status, code = 403, "forbidden_origin"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class NotExtendable(Conflict):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = reason


class Invalid(ApiError):
    status, code = 422, "invalid"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}

#: OpenAPI: the error shape, for routes to declare.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (401, 404, 409, 422, 500, 503)
}


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers or None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return error_response(exc.status, exc.code, exc.message, **headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = (
            f"{where}: {first.get('msg', 'invalid request')}"
            if where
            else str(first.get("msg", "invalid request"))
        )
        return error_response(422, "invalid", message)

    @app.exception_handler(StoreError)
    async def _store_down(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503,
            "unavailable",
            "the store is unavailable; try again shortly",
            **{"Retry-After": "5"},
        )

    @app.exception_handler(ProduceError)
    async def _broker_down(request: Request, exc: ProduceError) -> JSONResponse:
        log.error("broker error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "unavailable", "the message broker is unavailable; try again shortly",
            **{"Retry-After": "5"},
        )  # fmt: skip

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; it has been logged")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))
