"""HTTP routes: thin translations between HTTP and :mod:`api.service`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from api import service
from api.deps import MailboxDep, RuntimeDep
from api.errors import ERROR_RESPONSES, Invalid, RateLimited, Unavailable
from schemas.api import (
    CursorError,
    DomainList,
    Health,
    LiveMessage,
    MessageList,
    decode_cursor,
    encode_cursor,
)
from schemas.records import DeliveryEvent
from store import StoredMessage, StoreError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", responses=ERROR_RESPONSES)
health_router = APIRouter()

SSE_PING_S = 15
#: A resumed stream reads what was stored after ``Last-Event-ID`` in pages of this size.
BACKLOG_PAGE = 200


@router.get("/domains", response_model=DomainList, tags=["mailboxes"])
async def list_domains(runtime: RuntimeDep) -> DomainList:
    """The mail domains an address can be created on."""
    return DomainList(domains=runtime.settings.domains)


# POST /api/mailboxes and the rest of the mailbox contract: api.mailbox_routes.


@router.get("/messages", response_model=MessageList, tags=["messages"])
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
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`message` events; `id:` is the mailbox sequence",
        }
    },
)
async def live_events(
    request: Request,
    runtime: RuntimeDep,
    mailbox: MailboxDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
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

    async def stream() -> AsyncIterator[ServerSentEvent]:
        last_sent = after or 0
        try:
            while after is not None:  # everything stored since, page by page
                page = await runtime.store.list_messages_after(
                    mailbox.address, last_sent, limit=BACKLOG_PAGE
                )
                for message in page:
                    last_sent = message.seq
                    yield _message_event(message)
                if len(page) < BACKLOG_PAGE:
                    break
            while True:
                event = await sub.queue.get()
                if event is None:
                    return
                if event.seq > last_sent:
                    last_sent = event.seq
                    yield _delivery_event(event)
        finally:
            runtime.hub.unsubscribe(sub)

    return EventSourceResponse(
        stream(),
        ping=SSE_PING_S,
        send_timeout=settings.sse_send_timeout_s,  # a client that stops reading is dropped
        headers={"Cache-Control": "no-store"},
    )


def _event_id(header: str | None) -> int | None:
    """The seq a client resumes after; anything but ASCII digits is ignored (an SSE id is
    opaque to the client, and we only ever send seqs)."""
    if header and header.isascii() and header.isdigit():
        return int(header)
    return None


def _message_event(message: StoredMessage) -> ServerSentEvent:
    return _sse(LiveMessage.model_validate(message))


def _delivery_event(event: DeliveryEvent) -> ServerSentEvent:
    return _sse(LiveMessage.from_delivery(event))


def _sse(message: LiveMessage) -> ServerSentEvent:
    return ServerSentEvent(data=message.model_dump_json(), event="message", id=str(message.seq))


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
