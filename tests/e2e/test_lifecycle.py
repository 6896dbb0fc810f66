"""The mailbox lifecycle on the real stack and both stores, with lifetimes of seconds.

Mailboxes are created through API processes of the test's own (:class:`ExtraApis`),
on the stack's Kafka and store: one whose settings give a mailbox :data:`TTL_S` seconds,
a cooldown of :data:`COOLDOWN_S` and at most :data:`MAX_LIFETIME_S`, and one with the
same cooldown and a lifetime of a day (for tests that must not race the expiry while
they set up, on a loaded machine). Everything else is
the stack's: mail goes in over SMTP, its streams worker honours each mailbox's stored
expiry, and "someone else" taking an address is a client of the stack's own API.

Expiry (401 ``mailbox_expired``, late mail dropped, the address held through the
cooldown, then taken by someone else with none of the old mail), extension (refused
with its reason until used, capped at the maximum lifetime, honoured by the worker past
the first expiry), deletion (mail gone from the store at once, 401 ``mailbox_deleted``,
the address held), live streams ending with their mailbox, and a returning browser's
cookies (on the stack's API: its lifetimes are long enough for a cookie jar).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest

from api.browser import RECENT_COOKIE, TOKEN_COOKIE
from schemas.records import DroppedMail, utcnow
from schemas.settings import Settings
from schemas.topics import DROPPED_MAIL_TOPIC
from tests.e2e.helpers import (
    ExtraApis,
    Mailbox,
    TopicTail,
    create_mailbox,
    messages_until_closed,
    open_events,
    open_store,
    seconds_as_days,
    send_mail,
    send_raw,
    wait_for_messages,
)

TTL_S = 8.0
COOLDOWN_S = 4.0
MAX_LIFETIME_S = 20.0
EXTEND_MIN_MESSAGES = 2
SHORT_LIFETIMES = {
    "TMPMAIL_MAILBOX_TTL_DAYS": seconds_as_days(TTL_S),
    "TMPMAIL_MAILBOX_COOLDOWN_DAYS": seconds_as_days(COOLDOWN_S),
    "TMPMAIL_MAILBOX_MAX_LIFETIME_DAYS": seconds_as_days(MAX_LIFETIME_S),
    # Settings refuse mail that outlives the address and its cooldown.
    "TMPMAIL_MESSAGE_TTL_DAYS": seconds_as_days(TTL_S + COOLDOWN_S),
    "TMPMAIL_EXTEND_MIN_MESSAGES": str(EXTEND_MIN_MESSAGES),
    "TMPMAIL_EXTEND_MIN_AGE_DAYS": "30",  # only the message count makes one "used" here
}
#: The same cooldown, for mailboxes that must not expire while a test sets them up.
SHORT_COOLDOWN = {
    "TMPMAIL_MAILBOX_COOLDOWN_DAYS": seconds_as_days(COOLDOWN_S),
    "TMPMAIL_MAILBOX_TTL_DAYS": "1",
    "TMPMAIL_MESSAGE_TTL_DAYS": "1",
}
#: How late past its due time a change of state may show (polling, a loaded machine).
LATE_S = 10.0

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]


@pytest.fixture(scope="module")
def extra_apis() -> Iterator[ExtraApis]:
    apis = ExtraApis()
    yield apis
    apis.stop_all()


@asynccontextmanager
async def _clients(stack: Settings, api: Settings) -> AsyncIterator[Clients]:
    """A client of the test's own API, and one of the stack's API (someone else)."""
    async with (
        httpx.AsyncClient(base_url=api.http_url, timeout=30) as own,
        httpx.AsyncClient(base_url=stack.http_url, timeout=30) as other,
    ):
        yield own, other


@pytest.fixture
def short_lived_api(stack: Settings, extra_apis: ExtraApis) -> Settings:
    """An API process of the test's own whose mailboxes live seconds."""
    return extra_apis.get(stack, 1, SHORT_LIFETIMES)


@pytest.fixture
def short_cooldown_api(stack: Settings, extra_apis: ExtraApis) -> Settings:
    """An API process of the test's own whose mailboxes live a day and hold their
    address seconds after they end."""
    return extra_apis.get(stack, 3, SHORT_COOLDOWN)


@pytest.fixture
async def short_lived(stack: Settings, short_lived_api: Settings) -> AsyncIterator[Clients]:
    async with _clients(stack, short_lived_api) as pair:
        yield pair


@pytest.fixture
async def short_cooldown(stack: Settings, short_cooldown_api: Settings) -> AsyncIterator[Clients]:
    async with _clients(stack, short_cooldown_api) as pair:
        yield pair


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _sleep_until(moment: datetime) -> None:
    """Until ``moment`` has passed on the wall clock (the loop's timer may fire early)."""
    while (left := (moment - utcnow()).total_seconds()) >= 0:  # noqa: ASYNC110 - a clock
        await asyncio.sleep(left + 0.01)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


async def _state(client: httpx.AsyncClient, box: Mailbox) -> dict[str, object]:
    response = await client.get("/api/mailbox", headers=box.auth)
    assert response.status_code == 200, response.text
    state: dict[str, object] = response.json()
    return state


async def _dropped(tail: TopicTail, recipient: str) -> DroppedMail:
    def match(_key: bytes | None, value: bytes) -> bool:
        return recipient.encode() in value

    _key, value = await asyncio.to_thread(tail.wait_for, match, 30.0)
    return DroppedMail.from_bytes(value)


async def _taken_until_free(
    other: httpx.AsyncClient, username: str, domain: str, free_at: datetime
) -> Mailbox:
    """Ask for ``username@domain`` until it is given: refused (409) while it is held,
    given once ``free_at`` has passed, and soon after it."""
    body = {"username": username, "domain": domain}
    async with asyncio.timeout((free_at - utcnow()).total_seconds() + LATE_S):
        while True:
            response = await other.post("/api/mailboxes", json=body)
            answered = utcnow()
            if response.status_code == 201:
                break
            _error(response, 409, "conflict")
            await asyncio.sleep(0.2)
    assert answered >= free_at, f"given at {answered}, before its hold ended at {free_at}"
    data = response.json()
    return Mailbox(data["address"], data["token"], response.cookies)


async def test_an_expired_mailbox_is_401_drops_late_mail_and_is_held_through_its_cooldown(
    stack: Settings, short_lived: Clients
) -> None:
    short, other = short_lived
    username, domain = f"expiry-{uuid.uuid4().hex[:8]}", stack.domains[0]
    wanted = {"username": username, "domain": domain}
    box = await create_mailbox(short, **wanted)
    state = await _state(short, box)
    created, expires = _at(str(state["created_at"])), _at(str(state["expires_at"]))
    assert expires - created == timedelta(seconds=TTL_S)
    await asyncio.to_thread(send_mail, stack, box.address, "before expiry")
    (early,) = await wait_for_messages(short, box, 1)
    _error(await other.post("/api/mailboxes", json=wanted), 409, "conflict")
    lasting = await create_mailbox(other)  # a longer-lived mailbox in the same browser

    async with open_events(short, token=box.token) as events:
        await _sleep_until(expires)
        held = await other.post("/api/mailboxes", json=wanted)
        assert utcnow() < expires + timedelta(seconds=COOLDOWN_S), "too slow to see the hold"
        _error(held, 409, "conflict")  # expired, and held
        # The live stream ends with the mailbox (passing on, at most, the mail it had).
        late = await messages_until_closed(events, timeout_s=LATE_S)
        assert {e.json()["subject"] for e in late} <= {"before expiry"}
    _error(await short.get("/api/mailbox", headers=box.auth), 401, "mailbox_expired")
    _error(await short.get("/api/messages", headers=box.auth), 401, "mailbox_expired")
    for method, path in [
        ("GET", f"/api/messages/{early['id']}"),
        ("GET", "/api/events"),
        ("POST", "/api/mailbox/extend"),
    ]:
        _error(await short.request(method, path, headers=box.auth), 401, "mailbox_expired")
    # A browser's list leaves it out; its other mailbox stays.
    cookie = f"{TOKEN_COOKIE}={box.token}; {RECENT_COOKIE}={lasting.token}"
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as browser:
        recent = await browser.get("/api/mailboxes", headers={"Cookie": cookie})
    assert [m["address"] for m in recent.json()["mailboxes"]] == [lasting.address]
    # Mail after the expiry is dropped by the worker, with its reason.
    tail = await asyncio.to_thread(TopicTail, stack, DROPPED_MAIL_TOPIC)
    try:
        assert await asyncio.to_thread(send_mail, stack, box.address, "after expiry") == {}
        dropped = await _dropped(tail, box.address)
    finally:
        tail.close()
    assert dropped.reason == "expired_mailbox", dropped
    async with open_store(stack) as store:  # never stored: the store has the early mail only
        kept = await store.list_messages(box.address, limit=10)
    assert [m.subject for m in kept] == ["before expiry"]

    # The address is held through the cooldown, then someone else may take it...
    taker = await _taken_until_free(
        other, username, domain, free_at=expires + timedelta(seconds=COOLDOWN_S)
    )
    assert taker.address == box.address
    # ... and gets none of the earlier owner's mail, nor the mail dropped after the expiry.
    await asyncio.to_thread(send_mail, stack, taker.address, "for the new owner")
    listed = await wait_for_messages(other, taker, 1)
    assert [m["subject"] for m in listed] == ["for the new owner"]
    # The earlier owner's token no longer opens anything.
    _error(await short.get("/api/mailbox", headers=box.auth), 401, "unauthorized")
    _error(await other.get(f"/api/messages/{early['id']}", headers=taker.auth), 404, "not_found")


async def test_extension_needs_use_is_capped_and_holds_end_to_end(
    stack: Settings, short_lived: Clients
) -> None:
    short, _other = short_lived
    box = await create_mailbox(short)
    state = await _state(short, box)
    created, expires = _at(str(state["created_at"])), _at(str(state["expires_at"]))
    assert state["can_extend"] is False and state["reason"] == "not_used_enough"
    message = _error(
        await short.post("/api/mailbox/extend", headers=box.auth), 409, "not_used_enough"
    )
    assert f"{EXTEND_MIN_MESSAGES} messages" in message
    assert _at(str((await _state(short, box))["expires_at"])) == expires  # unchanged

    for n in range(EXTEND_MIN_MESSAGES):
        await asyncio.to_thread(send_mail, stack, box.address, f"use {n}")
    await wait_for_messages(short, box, EXTEND_MIN_MESSAGES)
    assert utcnow() < expires - timedelta(seconds=1), "mail took about the mailbox's lifetime"
    state = await _state(short, box)
    assert state["can_extend"] is True and state["reason"] is None
    assert _at(str(state["extend_until"])) == expires + timedelta(seconds=TTL_S)

    extended = await short.post("/api/mailbox/extend", headers=box.auth)
    assert extended.status_code == 200, extended.text
    assert _at(extended.json()["expires_at"]) == expires + timedelta(seconds=TTL_S)
    # The next extension stops at the maximum lifetime, short of a whole TTL...
    capped = await short.post("/api/mailbox/extend", headers=box.auth)
    assert capped.status_code == 200, capped.text
    final = created + timedelta(seconds=MAX_LIFETIME_S)
    assert _at(capped.json()["expires_at"]) == final
    assert capped.json()["can_extend"] is False and capped.json()["reason"] == "max_lifetime"
    # ... and there is none after it.
    _error(await short.post("/api/mailbox/extend", headers=box.auth), 409, "max_lifetime")

    # Past the first expiry the mailbox lives on, for the API and for the worker alike.
    await _sleep_until(expires + timedelta(seconds=0.5))
    assert _at(str((await _state(short, box))["expires_at"])) == final
    await asyncio.to_thread(send_mail, stack, box.address, "after the first expiry")
    listed = await wait_for_messages(short, box, EXTEND_MIN_MESSAGES + 1)
    assert listed[0]["subject"] == "after the first expiry"


def _mail_with_attachment(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "files@example.org"
    msg["To"] = to
    msg["Subject"] = "with a file"
    msg["Message-ID"] = f"<{uuid.uuid4()}@example.org>"
    msg.set_content("see the file")
    pdf = b"%PDF-1.4\n" + bytes(range(256))
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="doc.pdf")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


async def test_a_deleted_mailbox_loses_its_mail_at_once_and_is_held_through_its_cooldown(
    stack: Settings, short_cooldown: Clients
) -> None:
    short, other = short_cooldown
    username, domain = f"deleted-{uuid.uuid4().hex[:8]}", stack.domains[1]
    wanted = {"username": username, "domain": domain}
    box = await create_mailbox(short, **wanted)
    await asyncio.to_thread(send_mail, stack, box.address, "plain")
    await asyncio.to_thread(send_raw, stack, box.address, _mail_with_attachment(box.address))
    listed = await wait_for_messages(short, box, 2)
    ids = [m["id"] for m in listed]
    full = await short.get(f"/api/messages/{listed[0]['id']}", headers=box.auth)
    attachments = [(listed[0]["id"], a["id"]) for a in full.json()["attachments"]]
    assert attachments, full.text

    async with open_store(stack) as store:
        assert all([await store.get_raw(box.address, i) for i in ids])
        asked = utcnow()
        response = await short.delete("/api/mailbox", headers=box.auth)
        assert response.status_code == 204, response.text
        assert response.content == b""
        held = await other.post("/api/mailboxes", json=wanted)
        assert utcnow() < asked + timedelta(seconds=COOLDOWN_S), "too slow to see the hold"
        _error(held, 409, "conflict")
        # Gone from the store by the time the 204 is read: messages, raw bytes, documents
        # and attachments alike.
        assert await store.list_messages(box.address, limit=10) == []
        assert await store.count_messages(box.address) == 0
        for message_id in ids:
            assert await store.get_message(box.address, message_id) is None
            assert await store.get_raw(box.address, message_id) is None
            assert await store.get_document(box.address, message_id) is None
        for message_id, attachment_id in attachments:
            assert await store.get_attachment(box.address, message_id, attachment_id) is None

    for method, path in [
        ("GET", "/api/mailbox"),
        ("GET", "/api/messages"),
        ("GET", f"/api/messages/{ids[0]}"),
        ("POST", "/api/mailbox/extend"),
        ("DELETE", "/api/mailbox"),
    ]:
        _error(await short.request(method, path, headers=box.auth), 401, "mailbox_deleted")
    tail = await asyncio.to_thread(TopicTail, stack, DROPPED_MAIL_TOPIC)
    try:
        assert await asyncio.to_thread(send_mail, stack, box.address, "after delete") == {}
        assert (await _dropped(tail, box.address)).reason == "expired_mailbox"
    finally:
        tail.close()

    taker = await _taken_until_free(
        other, username, domain, free_at=asked + timedelta(seconds=COOLDOWN_S)
    )
    assert taker.address == box.address
    empty = await other.get("/api/messages", headers=taker.auth)
    assert empty.json()["messages"] == []


async def test_live_streams_end_with_their_mailbox_and_never_carry_the_next_owners_mail(
    stack: Settings, short_cooldown: Clients
) -> None:
    short, other = short_cooldown
    username, domain = f"stream-{uuid.uuid4().hex[:8]}", stack.domains[2]
    box = await create_mailbox(short, username=username, domain=domain)
    # One stream on the API process that deletes the mailbox, one on another (the stack's).
    async with (
        open_events(short, token=box.token) as here,
        open_events(other, token=box.token) as elsewhere,
    ):
        asked = utcnow()
        assert (await short.delete("/api/mailbox", headers=box.auth)).status_code == 204
        assert await messages_until_closed(here, timeout_s=LATE_S) == []
        taker = await _taken_until_free(
            other, username, domain, free_at=asked + timedelta(seconds=COOLDOWN_S)
        )
        async with open_events(other, token=taker.token) as takers:
            await asyncio.to_thread(send_mail, stack, taker.address, "for the new owner")
            assert (await takers.next_message()).json()["subject"] == "for the new owner"
        # The same delivery reached the earlier owner's stream: it ends instead.
        assert await messages_until_closed(elsewhere, timeout_s=LATE_S) == []


async def test_a_returning_browser_gets_its_five_recent_mailboxes_back(stack: Settings) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as browser:
        boxes = [await create_mailbox(browser) for _ in range(6)]
        newest = boxes[::-1]
        # The cookies hold the five newest tokens: the current one and four more.
        assert browser.cookies[TOKEN_COOKIE] == newest[0].token
        assert browser.cookies[RECENT_COOKIE].strip('"').split() == [b.token for b in newest[1:5]]
        cookies = browser.cookies

    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30, cookies=cookies) as back:
        mine = await back.get("/api/mailbox")  # no header: the cookie alone
        assert mine.status_code == 200, mine.text
        assert mine.json()["address"] == newest[0].address
        recent = (await back.get("/api/mailboxes")).json()["mailboxes"]
        assert [m["address"] for m in recent] == [b.address for b in newest[:5]]
        assert [m["current"] for m in recent] == [True, False, False, False, False]
        assert all("token" not in m for m in recent)

        switched = await back.post("/api/mailboxes/current", json={"address": newest[2].address})
        assert switched.status_code == 200, switched.text
        order = [newest[2], newest[0], newest[1], newest[3], newest[4]]
        assert [m["address"] for m in switched.json()["mailboxes"]] == [b.address for b in order]
        assert (await back.get("/api/mailbox")).json()["address"] == newest[2].address
        await asyncio.to_thread(send_mail, stack, newest[2].address, "via the cookie")
        async with asyncio.timeout(30):
            while not (await back.get("/api/messages")).json()["messages"]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        # The sixth, oldest mailbox fell out of the cookie: it cannot be switched to.
        oldest = await back.post("/api/mailboxes/current", json={"address": boxes[0].address})
        _error(oldest, 404, "not_found")

        # Deleting the current one makes the next most recent current.
        assert (await back.delete("/api/mailbox")).status_code == 204
        left = (await back.get("/api/mailboxes")).json()["mailboxes"]
        assert [m["address"] for m in left] == [b.address for b in order[1:]]
        assert (await back.get("/api/mailbox")).json()["address"] == order[1].address
