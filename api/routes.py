"""HTTP routes: thin translations between HTTP and :mod:`api.service`."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from api import service
from api.deps import MailboxDep, RuntimeDep
from api.errors import ERROR_RESPONSES, Invalid, RateLimited, Unavailable, error_responses
from api.live import PING_S, LiveResponse, live_stream
from schemas.api import (
    CursorError,
    DomainList,
    Health,
    LiveMessage,
    MessageList,
    decode_cursor,
    encode_cursor,
)
from store import StoreError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")
health_router = APIRouter()

#: OpenAPI: one event of the stream (what :func:`api.live.sse_event` writes, with LF
#: for CRLF), from
#: :class:`LiveMessage`'s example.
_SSE_EXAMPLE_MESSAGE = LiveMessage.model_validate(LiveMessage.model_json_schema()["examples"][0])
_SSE_EXAMPLE = (
    f"id: {_SSE_EXAMPLE_MESSAGE.seq}\nevent: message\n"
    f"data: {_SSE_EXAMPLE_MESSAGE.model_dump_json()}\n\n"
)


@router.get("/domains", response_model=DomainList, tags=["mailboxes"], responses=ERROR_RESPONSES)
async def list_domains(runtime: RuntimeDep) -> DomainList:
    """The mail domains an address can be created on."""
    return DomainList(domains=runtime.settings.domains)


# POST /api/mailboxes and the rest of the mailbox contract: api.mailbox_routes.


@router.get(
    "/messages",
    response_model=MessageList,
    tags=["messages"],
    responses=error_responses(401, 422, 429, 503),
)
async def list_messages(
    runtime: RuntimeDep,
    mailbox: MailboxDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> MessageList:
    """The caller's messages, newest first; follow ``next_cursor`` for older ones."""
    try:
        before = decode_cursor(cursor) if cursor else None
    except CursorError as exc:
        raise Invalid(f"cursor: {exc}") from None
    page, next_seq = await service.list_page(runtime.store, mailbox, limit=limit, before_seq=before)
    return MessageList(
        messages=[service.summary_public(m) for m in page],
        next_cursor=encode_cursor(next_seq) if next_seq is not None else None,
    )


@router.get(
    "/events",
    tags=["messages"],
    response_class=LiveResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
            },
            "description": "`message` events: each `data:` is a message's summary as JSON "
            "(the fields of `MessageSummaryPublic` but `expires_at` and `seen`), its `id:` "
            f"the message's mailbox sequence; a comment ping after {PING_S:g} s without one.",
        },
        **error_responses(
            401,
            403,
            422,
            429,
            503,
            described={
                429: "`rate_limited`: this mailbox has as many live streams open as it may "
                "(`TMPMAIL_SSE_MAX_PER_MAILBOX`), or too many unknown tokens came from "
                "this client; retry after `Retry-After` seconds.",
                503: "`unavailable`: this server has as many live streams as it takes "
                "(`TMPMAIL_SSE_MAX_CONNECTIONS`), or the store does not answer; retry.",
            },
        ),
    },
)
async def live_events(
    request: Request,
    runtime: RuntimeDep,
    mailbox: MailboxDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> LiveResponse:
    """New mail for the caller's mailbox, live (Server-Sent Events).

    Each event's ``id`` is the message's per-mailbox sequence. Reconnecting with
    ``Last-Event-ID`` first replays what was stored after it.
    """
    after = _event_id(last_event_id)
    settings = runtime.settings
    if runtime.hub.count(mailbox.address) >= settings.sse_max_per_mailbox:
        raise RateLimited(
            f"this mailbox already has {settings.sse_max_per_mailbox} live streams open; "
            "close one (another tab?) and retry",
            retry_after_s=10,
        )
    if runtime.hub.subscriber_count >= settings.sse_max_connections:
        raise Unavailable("this server has as many live streams as it takes; retry shortly")
    sub = runtime.hub.subscribe(mailbox.address)
    return LiveResponse(
        live_stream(
            runtime.store, mailbox, sub, after=after, on_end=lambda: runtime.hub.unsubscribe(sub)
        ),
        send_timeout=settings.sse_send_timeout_s,  # a client that stops reading is dropped
        on_disconnect=sub.end,
    )


def _event_id(header: str | None) -> int | None:
    """The seq a client resumes after; anything but ASCII digits is ignored (an SSE id is
    opaque to the client, and we only ever send seqs)."""
    if header and header.isascii() and header.isdigit():
        return int(header)
    return None


@health_router.get("/healthz", response_model=Health, tags=["health"])
async def healthz(runtime: RuntimeDep) -> Health:
    """Alive: the process answers. Says whether the delivery consumer has its partitions."""
    consumer = runtime.consumer
    assigned = consumer.assigned
    return Health(
        status="ok",
        store=runtime.settings.store,
        delivery_consumer="assigned" if assigned else "waiting",
        partitions=list(consumer.partitions),
    )


@health_router.get(
    "/readyz", response_model=Health, tags=["health"], responses={503: {"model": Health}}
)
async def readyz(runtime: RuntimeDep, response: Response) -> Health:
    """Ready: the store answers and the delivery consumer has its partitions."""
    health = await healthz(runtime)
    store_state = "ok"
    try:
        await runtime.store.ping()
    except StoreError as exc:
        log.warning("readiness: the store does not answer: %s", exc)
        store_state = "down"  # the detail (a path, a driver message) stays in the log
    ready = store_state == "ok" and health.delivery_consumer == "assigned"
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return health.model_copy(
        update={
            "status": "ready" if ready else "not_ready",
            "store": f"{runtime.settings.store}: {store_state}",
        }
    )
