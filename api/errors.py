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
``unavailable``; validation errors and Starlette's own HTTP errors keep their status (a
body that is not even UTF-8 is FastAPI's 400 ``bad_request``); any other exception is a
500 ``internal`` in the same JSON shape. No response carries a path, a driver message or
a stack trace: those go to the log.

The OpenAPI says the same: :data:`ERROR_DOCS` describes each status with its codes and
headers, and each route declares the statuses it can answer with :func:`error_responses`
(checked against the running app by ``tests/api/test_schemathesis.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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

#: OpenAPI ``responses=`` of a route (FastAPI's shape: status → response object).
Responses = dict[int | str, dict[str, Any]]

_RETRY_AFTER = {
    "description": "Whole seconds after which a retry can succeed.",
    "schema": {"type": "integer", "minimum": 1},
}


@dataclass(frozen=True, slots=True)
class _ErrorDoc:
    """What one error status means here: a description, and a (code, message) example
    of each code it carries, in the one error shape."""

    description: str
    examples: tuple[tuple[str, str], ...]
    headers: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


#: OpenAPI: every error status the API answers, with its codes (the tree above).
ERROR_DOCS: Mapping[int, _ErrorDoc] = {
    400: _ErrorDoc(
        "`bad_request`: the body could not be read at all (it is not UTF-8).",
        (("bad_request", "There was an error parsing the body"),),
    ),
    401: _ErrorDoc(
        "`unauthorized`: no token, a malformed `Authorization` header, or a token no "
        "mailbox has; `mailbox_expired` / `mailbox_deleted`: the token's mailbox has "
        "ended. Send `Authorization: Bearer <token>` or the `tmpmail_token` cookie.",
        (
            ("unauthorized", "a mailbox token is required (Bearer header or cookie)"),
            ("mailbox_expired", "this mailbox has expired"),
            ("mailbox_deleted", "this mailbox was deleted"),
        ),
        {
            "WWW-Authenticate": {
                "description": "Always `Bearer`.",
                "schema": {"type": "string"},
                "required": True,
            }
        },
    ),
    403: _ErrorDoc(
        "`forbidden_origin`: a state-changing request (or the live stream) from another "
        "site's page (`Origin`, else `Sec-Fetch-Site: cross-site`).",
        (
            (
                "forbidden_origin",
                "requests from origin 'https://elsewhere.example' are not accepted",
            ),
        ),
    ),
    404: _ErrorDoc(
        "`not_found`: nothing of the caller's mailbox has that id.",
        (("not_found", "no such message"),),
    ),
    409: _ErrorDoc(
        "`conflict`: the request conflicts with what is stored.",
        (("conflict", "bob@tmpmail.test is taken; choose another username"),),
    ),
    422: _ErrorDoc(
        "`invalid`: a parameter or the body (malformed JSON included) is not acceptable; "
        "the message names which.",
        (("invalid", "limit: Input should be less than or equal to 100"),),
    ),
    429: _ErrorDoc(
        "`rate_limited`: too many requests of this kind from this client; retry after "
        "`Retry-After` seconds.",
        (("rate_limited", "too many unknown tokens from this address; slow down"),),
        {"Retry-After": {**_RETRY_AFTER, "required": True}},
    ),
    500: _ErrorDoc(
        "`internal`: our bug. It is logged; the response carries nothing of it.",
        (("internal", "internal error; it has been logged"),),
    ),
    503: _ErrorDoc(
        "`unavailable`: the store or the broker does not answer, or the server is at "
        "capacity; retry (after `Retry-After` seconds, when it is sent).",
        (("unavailable", "the store is unavailable; try again shortly"),),
        {"Retry-After": _RETRY_AFTER},
    ),
}


def error_responses(
    *statuses: int,
    described: Mapping[int, str] | None = None,
    codes: Mapping[int, Sequence[tuple[str, str]]] | None = None,
) -> Responses:
    """OpenAPI ``responses=`` for the error statuses a route can answer, and the 500 that
    every route can, each in the one error shape (:class:`~schemas.api.ErrorBody`) with
    an example of each of its codes and its headers. ``described`` replaces the
    description of a status where the route says more, ``codes`` its examples."""
    responses: Responses = {}
    for status in sorted({*statuses, 500}):
        doc = ERROR_DOCS[status]
        examples = (codes or {}).get(status, doc.examples)
        response: dict[str, Any] = {
            "model": ErrorBody,
            "description": (described or {}).get(status, doc.description),
            "content": {
                "application/json": {
                    "examples": {
                        code: {
                            "summary": code,
                            "value": {"error": {"code": code, "message": message}},
                        }
                        for code, message in examples
                    }
                }
            },
        }
        if doc.headers:
            response["headers"] = {name: dict(header) for name, header in doc.headers.items()}
        responses[status] = response
    return responses


#: What every route can answer: a 500 in the same shape.
ERROR_RESPONSES: Responses = error_responses()


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
