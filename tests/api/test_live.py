"""The live stream's rules, pure: when it passes mail on, pings, asks the store, and ends.

A store double answers ``get_mailbox`` only (what :class:`api.live.MailboxWatch` calls)
and counts the calls; the whole-stack tests (``tests/e2e``) run the same code on real
processes.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from api import live
from api.hub import LiveHub
from api.live import PING, LiveResponse, MailboxWatch, live_stream
from schemas.records import DeliveryEvent, utcnow
from store import Mailbox

ADDRESS = "watch@tmpmail.test"


def _mailbox(**fields: object) -> Mailbox:
    now = utcnow()
    values: dict[str, object] = {
        "id": "box-1",
        "address": ADDRESS,
        "token_hash": "h",
        "created_at": now - timedelta(hours=1),
        "expires_at": now + timedelta(days=1),
        "purge_after": now + timedelta(days=31),
    }
    values.update(fields)
    return Mailbox(**values)  # type: ignore[arg-type]


class RecordStore:
    """``get_mailbox`` answers ``current``; ``reads`` counts the calls."""

    def __init__(self, current: Mailbox | None) -> None:
        self.current = current
        self.reads = 0

    async def get_mailbox(self, address: str) -> Mailbox | None:
        self.reads += 1
        return self.current


def _delivery(seq: int, mailbox_id: str = "box-1", **fields: object) -> DeliveryEvent:
    values: dict[str, object] = {
        "address": ADDRESS,
        "message_id": f"m{seq}",
        "seq": seq,
        "received_at": utcnow(),
        "mailbox_id": mailbox_id,
    }
    values.update(fields)
    return DeliveryEvent(**values)  # type: ignore[arg-type]


async def test_mail_of_its_own_record_passes_without_a_store_read() -> None:
    mailbox = _mailbox()
    store = RecordStore(mailbox)
    hub = LiveHub(8)
    sub = hub.subscribe(ADDRESS)
    watch = MailboxWatch(store, mailbox)  # type: ignore[arg-type]
    for seq in (1, 2, 3):
        hub.publish(_delivery(seq))
        event = await watch.next(sub)
        assert isinstance(event, DeliveryEvent) and event.seq == seq
    assert store.reads == 0


async def test_mail_stored_under_the_next_owners_record_ends_the_stream_unsent() -> None:
    mailbox = _mailbox()
    store = RecordStore(mailbox)
    hub = LiveHub(8)
    sub = hub.subscribe(ADDRESS)
    hub.publish(_delivery(7, mailbox_id="box-2"))
    assert await MailboxWatch(store, mailbox).next(sub) is None  # type: ignore[arg-type]
    assert store.reads == 0


@pytest.mark.parametrize(
    ("current", "passes"),
    [("same", True), ("deleted", False), ("other", False), ("gone", False)],
)
async def test_mail_naming_no_record_is_checked_with_the_store(current: str, passes: bool) -> None:
    mailbox = _mailbox()
    record = {
        "same": mailbox,
        "deleted": replace(mailbox, deleted=True),
        "other": replace(mailbox, id="box-2"),
        "gone": None,
    }[current]
    store = RecordStore(record)
    hub = LiveHub(8)
    sub = hub.subscribe(ADDRESS)
    hub.publish(_delivery(1, mailbox_id=""))  # a record from before the field existed
    got = await MailboxWatch(store, mailbox).next(sub)  # type: ignore[arg-type]
    assert (got is not None) is passes
    assert store.reads == 1


async def test_mail_received_after_the_known_expiry_asks_whether_it_was_extended() -> None:
    mailbox = _mailbox(expires_at=utcnow() + timedelta(seconds=30))
    extended = replace(mailbox, expires_at=utcnow() + timedelta(days=2))
    store = RecordStore(extended)
    hub = LiveHub(8)
    sub = hub.subscribe(ADDRESS)
    watch = MailboxWatch(store, mailbox)  # type: ignore[arg-type]
    hub.publish(_delivery(1, received_at=utcnow() + timedelta(minutes=1)))
    assert isinstance(await watch.next(sub), DeliveryEvent)
    assert store.reads == 1
    store.current = replace(extended, deleted=True)  # known now: no more reads for a while
    hub.publish(_delivery(2))
    assert isinstance(await watch.next(sub), DeliveryEvent)
    assert store.reads == 1


async def test_a_quiet_stream_pings_and_ends_at_its_expiry() -> None:
    mailbox = _mailbox(expires_at=utcnow() + timedelta(seconds=0.3))
    store = RecordStore(mailbox)  # the store has it unextended: it has expired
    sub = LiveHub(8).subscribe(ADDRESS)
    watch = MailboxWatch(store, mailbox, ping_s=0.1)  # type: ignore[arg-type]
    items = []
    async with asyncio.timeout(5):
        while (item := await watch.next(sub)) is not None:
            items.append(item)
    assert items and set(items) == {PING}
    assert store.reads == 1


async def test_a_quiet_stream_rereads_its_record_and_ends_once_deleted_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "IDLE_RECHECK_S", (0.05, 0.1))
    mailbox = _mailbox()
    store = RecordStore(mailbox)
    sub = LiveHub(8).subscribe(ADDRESS)
    watch = MailboxWatch(store, mailbox, ping_s=30)  # type: ignore[arg-type]
    task = asyncio.ensure_future(watch.next(sub))
    await asyncio.sleep(0.5)
    assert not task.done() and store.reads >= 2  # re-read, still live: waits on
    store.current = replace(mailbox, deleted=True)  # deleted through another process
    async with asyncio.timeout(5):
        assert await task is None


async def test_the_stream_resumes_after_last_event_id_and_skips_what_it_sent() -> None:
    class Backlog(RecordStore):
        async def list_messages_after(self, address: str, after: int, *, limit: int) -> list:
            return []

    mailbox = _mailbox()
    store = Backlog(mailbox)
    hub = LiveHub(8)
    sub = hub.subscribe(ADDRESS)
    ended: list[bool] = []
    chunks = live_stream(store, mailbox, sub, after=5, on_end=lambda: ended.append(True))  # type: ignore[arg-type]
    hub.publish(_delivery(5))  # already sent before the reconnect
    hub.publish(_delivery(6))
    first = await anext(chunks)
    assert first.startswith(b"id: 6\r\nevent: message\r\ndata: {")
    assert first.endswith(b"\r\n\r\n")
    await chunks.aclose()
    assert ended == [True]


async def test_the_response_stops_waiting_when_the_client_goes_away() -> None:
    """A client that disconnects ends the subscription at once (uvicorn's ``send`` does
    nothing after a disconnect, so only ``receive`` can tell)."""
    mailbox = _mailbox()
    store = RecordStore(mailbox)
    hub = LiveHub(8)
    sub = hub.subscribe(ADDRESS)
    sent: list[dict] = []
    gone = asyncio.Event()

    async def receive() -> dict:
        if not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    chunks = live_stream(
        store,  # type: ignore[arg-type]
        mailbox,
        sub,
        after=None,
        on_end=lambda: hub.unsubscribe(sub),
    )
    response = LiveResponse(chunks, send_timeout=5, on_disconnect=sub.end)
    task = asyncio.ensure_future(response({"type": "http"}, receive, send))
    hub.publish(_delivery(1))
    await asyncio.sleep(0.05)
    assert sent[0]["type"] == "http.response.start"
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"x-accel-buffering"] == b"no" and headers[b"cache-control"] == b"no-store"
    assert sent[1]["body"].startswith(b"id: 1\r\n")
    gone.set()
    async with asyncio.timeout(5):
        await task
    assert hub.count(ADDRESS) == 0


async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout() -> None:
    mailbox = _mailbox()
    hub = LiveHub(8)
    sub = hub.subscribe(ADDRESS)
    stalled = asyncio.Event()

    async def receive() -> dict:
        await asyncio.Event().wait()  # the client never goes away, nor reads
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message.get("body"):
            await stalled.wait()  # its buffers are full

    chunks = live_stream(
        RecordStore(mailbox),  # type: ignore[arg-type]
        mailbox,
        sub,
        after=None,
        on_end=lambda: hub.unsubscribe(sub),
    )
    response = LiveResponse(chunks, send_timeout=0.2, on_disconnect=sub.end)
    hub.publish(_delivery(1))
    async with asyncio.timeout(5):
        await response({"type": "http"}, receive, send)
    assert hub.count(ADDRESS) == 0
