"""The walking skeleton on real processes, on each store.

SMTP (smtplib, swaks) -> ingest -> tmpmail.raw-mail.v1 -> streams (table look-up, store)
-> tmpmail.delivery.v1 -> api -> GET /api/messages and SSE on GET /api/events.
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from schemas.records import DroppedMail
from schemas.settings import Settings
from schemas.topics import DROPPED_MAIL_TOPIC
from tests.e2e.helpers import (
    TopicTail,
    create_mailbox,
    open_events,
    send_mail,
    send_raw,
    send_with_swaks,
)


@pytest.fixture
async def client(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as c:
        yield c


async def _wait_listed(
    client: httpx.AsyncClient, token: str, subject: str, timeout_s: float = 30
) -> dict:
    """Poll the list until ``subject`` shows (the list is request/response by design)."""
    async with asyncio.timeout(timeout_s):
        while True:
            r = await client.get("/api/messages", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            for message in r.json()["messages"]:
                if message["subject"] == subject:
                    return message
            await asyncio.sleep(0.2)


async def test_domains_are_listed(client: httpx.AsyncClient, stack: Settings) -> None:
    r = await client.get("/api/domains")
    assert r.status_code == 200
    assert r.json() == {"domains": stack.domains}
    assert len(stack.domains) == 3


async def test_create_mailbox_returns_address_token_and_httponly_cookie(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    r = await client.post("/api/mailboxes")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["address"].rpartition("@")[2] in stack.domains
    assert len(body["token"]) >= 43
    cookie = r.headers["set-cookie"]
    assert "tmpmail_token=" in cookie and "HttpOnly" in cookie and "Path=/api" in cookie
    assert "samesite=strict" in cookie.lower()
    chosen = await client.post(
        "/api/mailboxes",
        json={"username": f"pick-{uuid.uuid4().hex[:8]}", "domain": stack.domains[1]},
    )
    assert chosen.status_code == 201
    taken = await client.post(
        "/api/mailboxes",
        json={"username": chosen.json()["address"].partition("@")[0], "domain": stack.domains[1]},
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "conflict"


async def test_mail_reaches_the_list_and_the_live_stream(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    box = await create_mailbox(client)
    subject = f"skeleton {uuid.uuid4().hex[:8]}"
    async with open_events(client, token=box.token) as events:
        refused = await asyncio.to_thread(send_mail, stack, box.address, subject, "first body")
        assert refused == {}
        live = await events.next_message()
    data = live.json()
    assert data["subject"] == subject
    assert data["preview"] == "first body"
    assert live.id == str(data["seq"])
    listed = await _wait_listed(client, box.token, subject)
    assert listed["id"] == data["id"] and listed["seq"] == data["seq"]
    assert listed["sender"] == "sender@example.org"


async def test_live_stream_accepts_the_cookie_and_resumes_from_last_event_id(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    box = await create_mailbox(client)
    subjects = [f"resume {i} {uuid.uuid4().hex[:6]}" for i in range(3)]
    for subject in subjects:
        await asyncio.to_thread(send_mail, stack, box.address, subject)
    await _wait_listed(client, box.token, subjects[-1])
    listed = (await client.get("/api/messages", headers=box.auth)).json()["messages"]
    seqs = sorted(m["seq"] for m in listed)
    # A browser's EventSource sends the HttpOnly cookie, not a header.
    async with httpx.AsyncClient(base_url=stack.http_url, cookies=box.cookies) as browser:
        async with open_events(browser, last_event_id=str(seqs[0])) as events:
            replayed = [await events.next_message(), await events.next_message()]
    assert [int(e.id or 0) for e in replayed] == seqs[1:]
    assert {e.json()["subject"] for e in replayed} == set(subjects) - {
        m["subject"] for m in listed if m["seq"] == seqs[0]
    }


async def test_swaks_delivers(client: httpx.AsyncClient, stack: Settings) -> None:
    box = await create_mailbox(client)
    subject = f"swaks {uuid.uuid4().hex[:8]}"
    result = await asyncio.to_thread(send_with_swaks, stack, box.address, subject)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 2.0.0" in result.stdout
    message = await _wait_listed(client, box.token, subject)
    assert message["sender"] == "swaks@example.org"


async def test_mail_for_an_unknown_address_is_dropped_with_its_reason(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    nobody = f"never-created-{uuid.uuid4().hex[:8]}@{stack.domains[0]}"
    tail = await asyncio.to_thread(TopicTail, stack, DROPPED_MAIL_TOPIC)
    try:
        # Accepted at the edge (it is one of our domains); the worker drops it.
        assert await asyncio.to_thread(send_mail, stack, nobody, "to nobody") == {}
        key, value = await asyncio.to_thread(tail.wait_for, lambda k, v: nobody.encode() in v, 60.0)
    finally:
        tail.close()
    dropped = DroppedMail.from_bytes(value)
    assert dropped.reason == "unknown_mailbox"
    assert dropped.recipient == nobody and key == nobody.encode()
    assert dropped.ingest_id and dropped.source_offset >= 0


async def test_foreign_domains_are_refused_at_the_edge(stack: Settings) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
        await asyncio.to_thread(send_mail, stack, "someone@example.com", "relay attempt")
    code, reply = exc.value.recipients["someone@example.com"]
    assert code == 550 and reply.startswith(b"5.7.1")


async def test_another_mailbox_sees_none_of_it(client: httpx.AsyncClient, stack: Settings) -> None:
    alice, bob = await create_mailbox(client), await create_mailbox(client)
    secret = f"for alice only {uuid.uuid4().hex[:8]}"
    mine = f"for bob {uuid.uuid4().hex[:8]}"
    async with (
        open_events(client, token=alice.token) as alice_events,
        open_events(client, token=bob.token) as bob_events,
    ):
        await asyncio.to_thread(send_mail, stack, alice.address, secret)
        assert (await alice_events.next_message()).json()["subject"] == secret
        # Alice's mail has been fanned out; now Bob's. Bob's first event must be his own.
        await asyncio.to_thread(send_mail, stack, bob.address, mine)
        assert (await bob_events.next_message()).json()["subject"] == mine
    bob_list = (await client.get("/api/messages", headers=bob.auth)).json()["messages"]
    assert [m["subject"] for m in bob_list] == [mine]
    alice_list = (await client.get("/api/messages", headers=alice.auth)).json()["messages"]
    assert [m["subject"] for m in alice_list] == [secret]


async def test_list_pages_newest_first_with_a_keyset_cursor(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    box = await create_mailbox(client)
    subjects = [f"page {i} {uuid.uuid4().hex[:6]}" for i in range(5)]
    for subject in subjects:
        await asyncio.to_thread(send_mail, stack, box.address, subject)
    await _wait_listed(client, box.token, subjects[-1])
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/messages", headers=box.auth, params=params)).json()
        seen.extend(page["messages"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    seqs = [m["seq"] for m in seen]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 5
    assert [m["subject"] for m in seen] == subjects[::-1]


async def test_errors_have_one_json_shape(client: httpx.AsyncClient) -> None:
    cases = [
        (await client.get("/api/messages"), 401, "unauthorized"),
        (
            await client.get("/api/messages", headers={"Authorization": "Bearer nope"}),
            401,
            "unauthorized",
        ),
        (await client.get("/api/events"), 401, "unauthorized"),
        (await client.post("/api/mailboxes", json={"username": "x"}), 422, "invalid"),
        (await client.post("/api/mailboxes", json={"domain": "example.com"}), 422, "invalid"),
        (await client.get("/api/nothing-here"), 404, "not_found"),
    ]
    box = await create_mailbox(client)
    cases.append(
        (
            await client.get("/api/messages", headers=box.auth, params={"cursor": "garbage!"}),
            422,
            "invalid",
        )
    )
    for response, status, code in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"] == code
        assert body["error"]["message"]


async def test_ten_mib_mail_goes_through_and_larger_is_refused_552(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    box = await create_mailbox(client)
    subject = f"big {uuid.uuid4().hex[:8]}"
    head = f"From: big@example.org\r\nTo: {box.address}\r\nSubject: {subject}\r\n\r\n".encode()
    line = b"x" * 998 + b"\r\n"
    body = line * ((stack.max_message_bytes - len(head) - 4096) // len(line))
    mail = head + body
    assert stack.max_message_bytes - 8192 < len(mail) <= stack.max_message_bytes

    assert await asyncio.to_thread(send_raw, stack, box.address, mail, "big@example.org", 120) == {}
    listed = await _wait_listed(client, box.token, subject, timeout_s=60)
    assert listed["size"] > len(mail)  # our Received: line is prepended to the exact bytes

    with pytest.raises(smtplib.SMTPException) as exc:
        await asyncio.to_thread(send_raw, stack, box.address, mail + line * 8)
    code = getattr(exc.value, "smtp_code", None)
    assert code == 552, exc.value


async def test_malformed_corpus_mail_is_stored_with_its_parse_errors(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    from tests.mail.support import CORPUS_FILES

    box = await create_mailbox(client)
    picked = [p for p in CORPUS_FILES if p.parent.name == "mail-parser"][:12]
    sent = 0
    for path in picked:
        data = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if any(len(line) > 998 for line in data.split(b"\r\n")):
            continue  # SMTP caps lines at 1000 bytes; such files are not valid on the wire

        assert (
            await asyncio.to_thread(send_raw, stack, box.address, data, "corpus@example.org") == {}
        )
        sent += 1
    assert sent >= 5
    async with asyncio.timeout(60):
        while True:
            r = await client.get("/api/messages", headers=box.auth, params={"limit": 100})
            messages = r.json()["messages"]
            if len(messages) == sent:
                break
            await asyncio.sleep(0.3)
    assert any(m["parse_errors"] for m in messages), "the corpus has malformed mail"
