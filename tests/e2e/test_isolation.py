"""Mailboxes are isolated, and strangers learn nothing, on the real stack and both stores.

* Another mailbox's message and attachment ids are 404 on every message route, exactly
  as an id nobody has; deleting all of one's mail leaves another's; a stream resumed
  from the start carries only its own mailbox's mail. (The live stream's isolation is
  ``test_skeleton.test_another_mailbox_sees_none_of_it``; between two owners of one
  address, ``test_lifecycle.test_live_streams_end_with_their_mailbox_...``.)
* The existence-oracle audit: without a mailbox's token, no response (status, headers,
  body; timing aside) differs between an address that exists, has mail, was deleted or
  never was, nor between a message id that exists and one that does not. The one
  exception by design is the 409 of ``POST /api/mailboxes`` for a username that is
  held, which is the same whether its mailbox is live, has mail, or was deleted.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from api.browser import RECENT_COOKIE, TOKEN_COOKIE
from schemas.settings import Settings
from tests.e2e.helpers import (
    Mailbox,
    create_mailbox,
    open_events,
    response_fingerprint,
    send_mail,
    send_raw,
    wait_for_messages,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
#: (method, path template, JSON body): every route that takes a message id.
MESSAGE_ROUTES: list[tuple[str, str, dict[str, bool] | None]] = [
    ("GET", "/api/messages/{id}", None),
    ("GET", "/api/messages/{id}/raw", None),
    ("GET", "/api/messages/{id}/html", None),
    ("GET", "/api/messages/{id}/html-url", None),
    ("GET", "/api/messages/{id}/attachments/{aid}", None),
    ("PATCH", "/api/messages/{id}", {"seen": True}),
    ("DELETE", "/api/messages/{id}", None),
]
#: Routes of the caller's own mailbox, which take no id at all.
MAILBOX_ROUTES = [
    ("GET", "/api/mailbox"),
    ("POST", "/api/mailbox/extend"),
    ("DELETE", "/api/mailbox"),
    ("GET", "/api/messages"),
    ("DELETE", "/api/messages"),
    ("GET", "/api/events"),
]


@pytest.fixture
async def client(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as c:
        yield c


def _rich_mail(to: str, subject: str) -> bytes:
    """HTML with an inline image, a text part and a PDF attachment."""
    msg = EmailMessage()
    msg["From"] = "Rich Sender <rich@example.org>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@example.org>"
    msg.set_content("the text part")
    msg.add_alternative('<p>the html part <img src="cid:logo@example.org"></p>', subtype="html")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    html_part.add_related(  # type: ignore[union-attr]
        PNG, maintype="image", subtype="png", cid="<logo@example.org>", filename="logo.png"
    )
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


async def _one_message(
    client: httpx.AsyncClient, box: Mailbox, subject: str
) -> tuple[str, str | None]:
    """The id of ``box``'s message ``subject`` once listed, and of its PDF attachment."""
    async with asyncio.timeout(60):
        while True:
            listed = await wait_for_messages(client, box, 1)
            found = [m for m in listed if m["subject"] == subject]
            if found:
                break
            await asyncio.sleep(0.1)
    message_id = str(found[0]["id"])
    full = await client.get(f"/api/messages/{message_id}", headers=box.auth)
    assert full.status_code == 200, full.text
    pdfs = [a["id"] for a in full.json()["attachments"] if a["filename"] == "report.pdf"]
    return message_id, (pdfs[0] if pdfs else None)


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


async def _signed_url(client: httpx.AsyncClient, box: Mailbox, message_id: str) -> str:
    response = await client.get(f"/api/messages/{message_id}/html-url", headers=box.auth)
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


def _with(url: str, path_id: str | None = None, **query: str) -> str:
    """``url`` with its message id and some of its query replaced."""
    parts = urlsplit(url)
    values = {k: v[0] for k, v in parse_qs(parts.query).items()} | query
    path = parts.path
    if path_id is not None:
        segments = path.split("/")  # "", "api", "messages", id, ...
        path = "/".join([*segments[:3], path_id, *segments[4:]])
    return f"{path}?{urlencode(values)}"


async def test_another_mailboxs_ids_are_404_on_every_message_route(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    # One local part on two domains: two mailboxes.
    username = f"iso-{uuid.uuid4().hex[:8]}"
    ann = await create_mailbox(client, username=username, domain=stack.domains[0])
    bob = await create_mailbox(client, username=username, domain=stack.domains[1])
    # Case and a +tag name Ann's mailbox, not Bob's.
    tagged = f"{username.upper()}+news@{stack.domains[0].upper()}"
    await asyncio.to_thread(send_raw, stack, tagged, _rich_mail(tagged, "for ann"))
    await asyncio.to_thread(send_mail, stack, bob.address, "for bob")
    ann_id, ann_pdf = await _one_message(client, ann, "for ann")
    bob_id, _ = await _one_message(client, bob, "for bob")
    assert ann_pdf is not None
    assert [m["subject"] for m in await wait_for_messages(client, ann, 1)] == ["for ann"]
    assert [m["subject"] for m in await wait_for_messages(client, bob, 1)] == ["for bob"]

    made_up = secrets.token_hex(16)
    for method, template, body in MESSAGE_ROUTES:
        theirs, nobodys = [
            await client.request(
                method, template.format(id=mid, aid=ann_pdf), json=body, headers=bob.auth
            )
            for mid in (ann_id, made_up)
        ]
        _error(theirs, 404, "not_found")
        assert response_fingerprint(theirs) == response_fingerprint(nobodys), template
    # Ann's attachment id under Bob's own message is not found either.
    crossed = await client.get(f"/api/messages/{bob_id}/attachments/{ann_pdf}", headers=bob.auth)
    _error(crossed, 404, "not_found")

    # Bob changed nothing of Ann's: not marked seen, not deleted, every part still there.
    mine = await client.get(f"/api/messages/{ann_id}", headers=ann.auth)
    assert mine.status_code == 200 and mine.json()["seen"] is False
    raw = await client.get(f"/api/messages/{ann_id}/raw", headers=ann.auth)
    assert raw.status_code == 200 and b"for ann" in raw.content
    html = await client.get(f"/api/messages/{ann_id}/html", headers=ann.auth)
    assert html.status_code == 200 and "the html part" in html.text
    pdf = await client.get(f"/api/messages/{ann_id}/attachments/{ann_pdf}", headers=ann.auth)
    assert pdf.status_code == 200 and pdf.content == PDF

    # Bob's "delete all" deletes Bob's mail only.
    assert (await client.delete("/api/messages", headers=bob.auth)).status_code == 204
    assert (await client.get("/api/messages", headers=bob.auth)).json()["messages"] == []
    ann_list = (await client.get("/api/messages", headers=ann.auth)).json()["messages"]
    assert [m["id"] for m in ann_list] == [ann_id]

    # Ann's signed URL opens Ann's message, and nothing else.
    url = await _signed_url(client, ann, ann_id)
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as bare:
        assert (await bare.get(url)).status_code == 200
        for other in (_with(url, path_id=bob_id), _with(url, mailbox=bob.address)):
            _error(await bare.get(other), 401, "unauthorized")


async def test_a_stream_resumed_from_the_start_carries_only_its_own_mail(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    ann, bob = await create_mailbox(client), await create_mailbox(client)
    await asyncio.to_thread(send_mail, stack, ann.address, "ann 1")
    await asyncio.to_thread(send_mail, stack, bob.address, "bob 1")
    await wait_for_messages(client, ann, 1)
    await wait_for_messages(client, bob, 1)
    async with open_events(client, token=bob.token, last_event_id="0") as events:
        assert (await events.next_message()).json()["subject"] == "bob 1"  # the backlog
        # Ann's mail goes out first: had it reached Bob's stream, it would come next.
        await asyncio.to_thread(send_mail, stack, ann.address, "ann 2")
        await wait_for_messages(client, ann, 2)
        await asyncio.to_thread(send_mail, stack, bob.address, "bob 2")
        assert (await events.next_message()).json()["subject"] == "bob 2"


def _strangers() -> dict[str, dict[str, str]]:
    """Requests' credentials of someone without any token."""
    return {
        "no credentials": {},
        "a made-up token": {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"},
        "another scheme": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
        "a forged cookie": {
            "Cookie": f"{TOKEN_COOKIE}={secrets.token_urlsafe(32)}; "
            f"{RECENT_COOKIE}={secrets.token_urlsafe(32)}"
        },
        "a malformed cookie": {"Cookie": f"{TOKEN_COOKIE}=%00x; {RECENT_COOKIE}=,,;"},
    }


def _same(
    responses: dict[str, httpx.Response], what: str, echoed: dict[str, str] | None = None
) -> httpx.Response:
    """All of ``responses`` alike (but for the text of ``echoed[name]``, which the request
    named and its answer may repeat); returns one of them."""
    prints = {}
    for name, response in responses.items():
        status, headers, body = response_fingerprint(response)
        if echoed:
            body = body.replace(echoed[name].encode(), b"<echoed>")
        prints[name] = (status, headers, body)
    first_name, first = next(iter(prints.items()))
    for name, value in prints.items():
        assert value == first, f"{what}: {name!r} answers otherwise than {first_name!r}"
    return responses[first_name]


async def test_nothing_tells_a_stranger_whether_an_address_exists_or_has_mail(
    client: httpx.AsyncClient, stack: Settings
) -> None:
    domain = stack.domains[0]
    # Names of one length, so that answers that repeat them have one length too.
    names = {kind: f"oracle-{uuid.uuid4().hex[:8]}" for kind in ("mail", "empty", "gone")}
    with_mail = await create_mailbox(client, username=names["mail"], domain=domain)
    empty = await create_mailbox(client, username=names["empty"], domain=domain)
    gone = await create_mailbox(client, username=names["gone"], domain=domain)
    for box in (with_mail, gone):
        await asyncio.to_thread(send_raw, stack, box.address, _rich_mail(box.address, "rich"))
    mail_id, pdf_id = await _one_message(client, with_mail, "rich")
    gone_id, _ = await _one_message(client, gone, "rich")
    assert pdf_id is not None
    signed = await _signed_url(client, with_mail, mail_id)
    gone_signed = await _signed_url(client, gone, gone_id)  # issued before the delete
    assert (await client.delete("/api/mailbox", headers=gone.auth)).status_code == 204
    never = f"oracle-{uuid.uuid4().hex[:8]}@{domain}"
    addresses = {
        "an address with mail": with_mail.address,
        "an address without mail": empty.address,
        "a deleted address": gone.address,
        "an address never created": never,
        "an address with mail, in capitals": with_mail.address.upper(),
        "an address with a NUL": f"{names['mail']}\x00@{domain}",
    }
    message_ids = {
        "a message id that exists": mail_id,
        "a deleted mailbox's message id": gone_id,
        "a made-up message id": secrets.token_hex(16),
    }
    forged_sig = secrets.token_urlsafe(32)

    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as stranger:
        for who, credentials in _strangers().items():
            for method, template, body in MESSAGE_ROUTES:
                answers = {
                    name: await stranger.request(
                        method,
                        template.format(id=mid, aid=pdf_id),
                        json=body,
                        headers=credentials,
                    )
                    for name, mid in message_ids.items()
                }
                assert _same(answers, f"{who}, {method} {template}").status_code == 401
            for method, path in MAILBOX_ROUTES:
                response = await stranger.request(method, path, headers=credentials)
                assert response.status_code == 401, (who, method, path, response.text)

            # The browser's own list and switch: no address is among a stranger's.
            recent = await stranger.get("/api/mailboxes", headers=credentials)
            assert recent.status_code in (200, 401), recent.text
            if recent.status_code == 200:
                assert recent.json() == {"mailboxes": []}
            switches = {
                name: await stranger.post(
                    "/api/mailboxes/current", json={"address": address}, headers=credentials
                )
                for name, address in addresses.items()
            }
            assert _same(switches, f"{who}, POST /api/mailboxes/current").status_code == 404

        # Someone with a mailbox of their own learns no more of others' ids than a 404.
        for method, template, body in MESSAGE_ROUTES:
            answers = {
                name: await stranger.request(
                    method, template.format(id=mid, aid=pdf_id), json=body, headers=empty.auth
                )
                for name, mid in message_ids.items()
            }
            assert _same(answers, f"another's token, {method} {template}").status_code == 404

        # Signed HTML URLs: a genuine signature under another address, a forged one under
        # any address, and one issued to a mailbox since deleted are all one refusal.
        others = ("an address without mail", "a deleted address", "an address never created")
        urls = {
            f"a genuine signature, {name}": _with(signed, mailbox=addresses[name])
            for name in (*others, "an address with a NUL")
        }
        for name, address in addresses.items():
            for id_name, mid in message_ids.items():
                urls[f"a forged signature, {name}, {id_name}"] = _with(
                    signed, path_id=mid, mailbox=address, sig=forged_sig
                )
        urls["a genuine signature of a mailbox since deleted"] = gone_signed
        answers = {name: await stranger.get(url) for name, url in urls.items()}
        refusal = _same(answers, "GET /api/messages/{id}/html?sig=...")
        _error(refusal, 401, "unauthorized")
        assert (await stranger.get(signed)).status_code == 200  # the genuine URL works

        # The one answer that must say "held": a username asked for. It is the same for a
        # live mailbox with mail, one without, and one deleted and in its cooldown.
        held = {
            kind: await stranger.post("/api/mailboxes", json={"username": name, "domain": domain})
            for kind, name in names.items()
        }
        refused = _same(held, "POST /api/mailboxes for a held username", echoed=names)
        _error(refused, 409, "conflict")
