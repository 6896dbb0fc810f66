"""HTTP routes: thin translations between HTTP and :mod:`api.service`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from api import mailbox_service, service
from api.deps import MailboxDep, RuntimeDep
from api.errors import ERROR_RESPONSES, Invalid, RateLimited, Unavailable, error_responses
from api.hub import Subscription
from schemas.api import (
    CursorError,
    DomainList,
    Health,
    LiveMessage,
    MessageList,
    decode_cursor,
    encode_cursor,
)
from schemas.records import DeliveryEvent, utcnow
from store import Mailbox, MailStore, StoredMessage, StoreError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")
health_router = APIRouter()

SSE_PING_S = 15
#: OpenAPI: one event of the stream (what :func:`_sse` writes, with LF for CRLF), from
#: :class:`LiveMessage`'s example.
_SSE_EXAMPLE_MESSAGE = LiveMessage.model_validate(LiveMessage.model_json_schema()["examples"][0])
_SSE_EXAMPLE = (
    f"id: {_SSE_EXAMPLE_MESSAGE.seq}\nevent: message\n"
    f"data: {_SSE_EXAMPLE_MESSAGE.model_dump_json()}\n\n"
)
#: A live stream asks whether its mailbox still lives before passing on mail at most this
#: often (seconds); see :class:`_MailboxWatch`.
RECHECK_S = 1.0
#: A resumed stream reads what was stored after ``Last-Event-ID`` in pages of this size.
BACKLOG_PAGE = 200


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
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
            },
            "description": "`message` events: each `data:` is a message's summary as JSON "
            "(the fields of `MessageSummaryPublic` but `expires_at` and `seen`), its `id:` "
            f"the message's mailbox sequence; a comment ping every {SSE_PING_S} s.",
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

    async def stream() -> AsyncIterator[bytes]:
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
            watch = _MailboxWatch(runtime.store, mailbox)
            while (event := await watch.next_delivery(sub)) is not None:
                if event.seq > last_sent:
                    last_sent = event.seq
                    yield _delivery_event(event)
        finally:
            runtime.hub.unsubscribe(sub)

    return LiveResponse(
        stream(),
        ping=SSE_PING_S,
        send_timeout=settings.sse_send_timeout_s,  # a client that stops reading is dropped
        headers={"Cache-Control": "no-store"},
    )


class LiveResponse(EventSourceResponse):
    """An SSE response whose send timeout ends the stream quietly: dropping a client
    that stopped reading is the rule working, not an error of the application."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except* SendTimeoutError:  # sse-starlette raises it from its task group
            log.info("dropped a live client that stopped reading (send timeout)")


class _MailboxWatch:
    """Whether a live stream's mailbox still lives, so that the stream ends with it (at
    its expiry, or once it was deleted) and never carries mail of the address's next
    owner. The store is asked at the expiry known here, for mail received after it, and
    before passing on mail at most every :data:`RECHECK_S` (the hub closes the streams
    of a mailbox deleted through this process at once; those of other processes end at
    their next mail)."""

    def __init__(self, store: MailStore, mailbox: Mailbox) -> None:
        self._store = store
        self._mailbox = mailbox
        self._checked = time.monotonic()

    async def next_delivery(self, sub: Subscription) -> DeliveryEvent | None:
        """The next delivery to pass on; ``None`` when the stream must end."""
        while True:
            left = (self._mailbox.expires_at - utcnow()).total_seconds()
            try:
                async with asyncio.timeout(max(left, 0.0) + 0.01):
                    event = await sub.queue.get()
            except TimeoutError:  # its expiry: the end, unless it was extended meanwhile
                event = None
            else:
                if event is None:  # the hub ended it: a slow client, or deleted here
                    return None
            due = time.monotonic() - self._checked >= RECHECK_S
            if event is None or due or event.received_at >= self._mailbox.expires_at:
                if not await self._still_live():
                    return None
            if event is not None:
                return event

    async def _still_live(self) -> bool:
        try:
            current = await mailbox_service.still_live(self._store, self._mailbox, utcnow())
        except StoreError as exc:
            address = self._mailbox.address
            log.warning("ending a live stream of %s: the store does not answer: %s", address, exc)
            return False
        if current is None:
            return False
        self._mailbox, self._checked = current, time.monotonic()
        return True


def _event_id(header: str | None) -> int | None:
    """The seq a client resumes after; anything but ASCII digits is ignored (an SSE id is
    opaque to the client, and we only ever send seqs)."""
    if header and header.isascii() and header.isdigit():
        return int(header)
    return None


def _message_event(message: StoredMessage) -> bytes:
    return _sse(LiveMessage.model_validate(message))


def _delivery_event(event: DeliveryEvent) -> bytes:
    return _sse(LiveMessage.from_delivery(event))


def _sse(message: LiveMessage) -> bytes:
    """One ``message`` event, the bytes sse_starlette's ``ServerSentEvent`` would write,
    built directly: that encoder (a StringIO, a regex split of the data) cost twice what
    the JSON does, once per client and event (``bench/fanout.py``). The JSON is one line
    (it escapes CR and LF), so it is one ``data:`` line."""
    data = message.model_dump_json()
    return f"id: {message.seq}\r\nevent: message\r\ndata: {data}\r\n\r\n".encode()


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
