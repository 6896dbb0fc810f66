"""The live-event stream (Server-Sent Events) of one mailbox: what it sends, and when it ends.

:func:`live_stream` yields the bytes of one stream: the mail stored after
``Last-Event-ID`` first, then each new delivery, with a comment ping after
:data:`PING_S` of quiet. :class:`MailboxWatch` decides when the stream must end, so that
it ends with its mailbox and never carries mail of the address's next owner.
:class:`LiveResponse` writes it to the client.

The response is our own, not sse-starlette's: at 10,000 open streams on one process
(``bench/fanout.py``) that one's four tasks and task group per stream, its cancel scope
per send and its lock per ping were most of the objects the cyclic GC scans and a large
share of the CPU per event. Here a stream is the request's own task plus one task that
waits for the client to go away.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api import mailbox_service
from api.hub import Subscription
from schemas.api import LiveMessage
from schemas.records import DeliveryEvent, utcnow
from store import Mailbox, MailStore, StoredMessage, StoreError

log = logging.getLogger(__name__)

#: A comment line goes out after this many seconds without an event (proxies and
#: browsers keep a quiet connection open; a dead one is found).
PING_S = 15.0
#: A quiet stream asks the store whether its mailbox still lives about this often
#: (seconds, each stream at its own random point of the span, so that thousands of
#: streams opened together do not ask together). Mail it passes on needs no store read:
#: each delivery names the mailbox record it was stored under.
IDLE_RECHECK_S: Final = (240.0, 360.0)
#: A resumed stream reads what was stored after ``Last-Event-ID`` in pages of this size.
BACKLOG_PAGE = 200

PING: Final = b": ping\r\n\r\n"


class MailboxWatch:
    """Whether a live stream's mailbox still lives.

    A stream ends when its mailbox does: at the expiry known here unless the store says
    it was extended; at once when deleted through this process (the hub ends its
    subscriptions); when mail arrives that was stored under another mailbox record of
    the address (its next owner's: the delivery's ``mailbox_id``), which it does not pass
    on; and, for a mailbox deleted through another process, at the next idle re-read of
    the record (:data:`IDLE_RECHECK_S`). Mail received after the known expiry, and
    deliveries that name no record (written before they did), are checked with the store.
    """

    def __init__(self, store: MailStore, mailbox: Mailbox, *, ping_s: float = PING_S) -> None:
        self._store = store
        self._mailbox = mailbox
        self._ping_s = ping_s
        self._recheck_at = _next_recheck()

    async def next(self, sub: Subscription) -> DeliveryEvent | bytes | None:
        """The next delivery to pass on, :data:`PING` after a quiet spell, or ``None``
        when the stream must end."""
        while True:
            now = time.monotonic()
            left = (self._mailbox.expires_at - utcnow()).total_seconds()
            wait = max(min(left + 0.01, self._ping_s, self._recheck_at - now), 0.0)
            try:
                async with asyncio.timeout(wait):
                    event = await sub.queue.get()
            except TimeoutError:
                if utcnow() >= self._mailbox.expires_at or time.monotonic() >= self._recheck_at:
                    if not await self._still_live():
                        return None
                    continue
                return PING
            if event is None:  # the hub ended it: a slow client, or deleted here
                return None
            if event.mailbox_id and event.mailbox_id != self._mailbox.id:
                return None  # stored under the address's next owner: this mailbox has ended
            if not event.mailbox_id or event.received_at >= self._mailbox.expires_at:
                if not await self._still_live():
                    return None
            return event

    async def _still_live(self) -> bool:
        self._recheck_at = _next_recheck()
        try:
            current = await mailbox_service.still_live(self._store, self._mailbox, utcnow())
        except StoreError as exc:
            address = self._mailbox.address
            log.warning("ending a live stream of %s: the store does not answer: %s", address, exc)
            return False
        if current is None:
            return False
        self._mailbox = current
        return True


def _next_recheck() -> float:
    return time.monotonic() + random.uniform(*IDLE_RECHECK_S)


async def live_stream(
    store: MailStore,
    mailbox: Mailbox,
    sub: Subscription,
    *,
    after: int | None,
    on_end: Callable[[], None],
    ping_s: float = PING_S,
) -> AsyncGenerator[bytes, None]:
    """The bytes of one stream: the backlog after ``after`` (page by page), then live
    deliveries newer than what was sent; ``on_end`` runs however it ends."""
    last_sent = after or 0
    try:
        while after is not None:  # everything stored since, page by page
            page = await store.list_messages_after(mailbox.address, last_sent, limit=BACKLOG_PAGE)
            for message in page:
                last_sent = message.seq
                yield message_event(message)
            if len(page) < BACKLOG_PAGE:
                break
        watch = MailboxWatch(store, mailbox, ping_s=ping_s)
        while (item := await watch.next(sub)) is not None:
            if isinstance(item, bytes):
                yield item
            elif item.seq > last_sent:
                last_sent = item.seq
                yield delivery_event(item)
    finally:
        on_end()


def message_event(message: StoredMessage) -> bytes:
    return sse_event(LiveMessage.model_validate(message))


def delivery_event(event: DeliveryEvent) -> bytes:
    return sse_event(LiveMessage.from_delivery(event))


def sse_event(message: LiveMessage) -> bytes:
    """One ``message`` event. The JSON is one line (it escapes CR and LF), so it is one
    ``data:`` line; its ``id`` is the message's mailbox sequence."""
    data = message.model_dump_json()
    return f"id: {message.seq}\r\nevent: message\r\ndata: {data}\r\n\r\n".encode()


class LiveResponse(Response):
    """A ``text/event-stream`` response that writes ``chunks`` as they come.

    Each write has ``send_timeout``: a client that stops reading is dropped once the
    socket's buffers are full and stay full that long. ``on_disconnect`` runs when the
    client goes away, so that the stream stops waiting for mail (uvicorn's ``send``
    does nothing once the peer has gone; only ``receive`` says so).
    """

    #: Set per instance, not on the class: FastAPI documents a route's error models under
    #: its response class's media type, and ours are JSON (``api.errors``).
    media_type = None

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        *,
        send_timeout: float,
        on_disconnect: Callable[[], None],
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,  # FastAPI's OpenAPI reads the default
    ) -> None:
        self.chunks = chunks
        self.send_timeout = send_timeout
        self.on_disconnect = on_disconnect
        self.status_code = status_code
        self.media_type = "text/event-stream"
        self.background = None
        self.init_headers(
            {"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.ensure_future(self._until_disconnect(receive))
        try:
            start = {"status": self.status_code, "headers": self.raw_headers}
            await send({"type": "http.response.start", **start})
            async for chunk in self.chunks:
                if watcher.done():
                    break
                async with asyncio.timeout(self.send_timeout):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not watcher.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            log.info("dropped a live client that stopped reading (send timeout)")
        except OSError:  # servers may raise once the peer has gone (ASGI 2.4)
            pass
        finally:
            watcher.cancel()
            await self.chunks.aclose()

    async def _until_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.on_disconnect()
