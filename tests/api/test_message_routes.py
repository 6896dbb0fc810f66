"""The message routes with httpx against the app (no broker) and a real SQLite store,
filled with real mails through ``mail.parse`` and ``store_messages``."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import mail
from api.app import create_app
from api.deps import Runtime
from api.hub import LiveHub
from api.service import hash_token
from schemas.mail import summary_fields
from schemas.records import utcnow
from schemas.settings import Settings
from store import Mailbox, NewMessage
from store.sqlite import SQLiteStore

ANN_TOKEN, BOB_TOKEN = "a" * 43, "b" * 43
ANN, BOB = "ann@tmpmail.test", "bob@tmpmail.test"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


# --- mails -----------------------------------------------------------------------------------
def _multipart_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Zoë Example <zoe@example.com>"
    msg["To"] = "Ann <ann@tmpmail.test>"
    msg["Cc"] = "carl@example.org"
    msg["Reply-To"] = "replies@example.com"
    msg["Subject"] = "Quarterly report: Q3/Q4"
    msg["Date"] = "Tue, 03 Dec 2026 10:00:00 +0100"
    msg["Message-ID"] = "<report@example.com>"
    msg["List-Unsubscribe"] = "<https://example.com/unsub>"
    msg.set_content("Hi Ann, the report is attached.\n")
    msg.add_alternative(
        '<p>Hi Ann <img src="cid:logo@example.com"> <img src="https://tracker.example/p.gif"></p>',
        subtype="html",
    )
    msg.get_payload()[1].add_related(  # type: ignore[index, union-attr]
        PNG,
        maintype="image",
        subtype="png",
        cid="<logo@example.com>",
        filename="logo.png",
        disposition="inline",
    )
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="résumé 2026.pdf")
    msg.add_attachment(SVG, maintype="image", subtype="svg+xml", filename="../evil.svg")
    return msg.as_bytes()


def _remote_html_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "news@example.com"
    msg["To"] = ANN
    msg["Subject"] = "News"
    msg.set_content(
        '<p><img src="https://a.example/1.png"><img src="http://b.example/2.png"></p>',
        subtype="html",
    )
    return msg.as_bytes()


def _text_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "plain@example.com"
    msg["To"] = ANN
    msg["Subject"] = "Plain"
    msg.set_content("See https://example.com/x?a=1 <b>not bold</b>\n")
    return msg.as_bytes()


def _new_message(address: str, raw: bytes, name: str) -> NewMessage:
    result = mail.parse(raw)
    now = utcnow()
    return NewMessage(
        **summary_fields(result.mail),
        id=f"{name}-{address.partition('@')[0]}",
        address=address,
        ingest_id=name,
        received_at=now,
        expires_at=now + timedelta(days=7),
        raw=raw,
        document=result.mail,
        attachment_data=result.attachment_data,
        parser_version=result.mail.parser_version,
    )


# --- the app ---------------------------------------------------------------------------------
@dataclass
class FakeConsumer:
    assigned: bool = True
    partitions: list[int] = field(default_factory=lambda: [0])


class NullPublisher:
    async def publish_lifecycle(self, event: object) -> None:
        return None


@dataclass
class World:
    client: httpx.AsyncClient
    store: SQLiteStore
    raws: dict[str, bytes]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(state_dir=tmp_path, domains=["tmpmail.test"])  # type: ignore[call-arg]
    store = SQLiteStore(tmp_path / "tmpmail.sqlite3")
    await store.open()
    now = utcnow()
    for address, token in ((ANN, ANN_TOKEN), (BOB, BOB_TOKEN)):
        mailbox = Mailbox(
            id=f"id-{address}",
            address=address,
            token_hash=hash_token(token),
            created_at=now - timedelta(minutes=1),
            expires_at=now + timedelta(days=1),
            purge_after=now + timedelta(days=2),
        )
        assert await store.create_mailbox(mailbox, now)
    raws = {"multi": _multipart_mail(), "remote": _remote_html_mail(), "text": _text_mail()}
    batch = [_new_message(ANN, raw, name) for name, raw in raws.items()]
    batch.append(_new_message(BOB, raws["text"], "text"))
    results = await store.store_messages(batch, now)
    assert [r.status for r in results] == ["inserted"] * 4
    app = create_app(settings)
    app.state.runtime = Runtime(
        settings=settings,
        store=store,
        hub=LiveHub(8),
        publisher=NullPublisher(),
        consumer=FakeConsumer(),  # type: ignore[arg-type]
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield World(client, store, raws)
    await store.close()


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


# --- tests -----------------------------------------------------------------------------------
async def test_the_list_shows_from_seen_and_attachments(world: World) -> None:
    response = await world.client.get("/api/messages", headers=_auth(ANN_TOKEN))
    assert response.status_code == 200
    by_id = {m["id"]: m for m in response.json()["messages"]}
    multi = by_id["multi-ann"]
    assert (multi["from_name"], multi["from_address"]) == ("Zoë Example", "zoe@example.com")
    assert multi["has_attachments"] is True and multi["seen"] is False
    assert by_id["text-ann"]["has_attachments"] is False


async def test_the_full_message(world: World) -> None:
    response = await world.client.get("/api/messages/multi-ann", headers=_auth(ANN_TOKEN))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"] == [{"name": "Zoë Example", "address": "zoe@example.com"}]
    assert body["to"] == [{"name": "Ann", "address": "ann@tmpmail.test"}]
    assert [a["address"] for a in body["cc"]] == ["carl@example.org"]
    assert [a["address"] for a in body["reply_to"]] == ["replies@example.com"]
    assert body["subject"] == "Quarterly report: Q3/Q4"
    assert body["date"].startswith("2026-12-03T10:00:00")
    assert body["text"] == "Hi Ann, the report is attached.\n"
    assert body["has_html"] is True and body["remote_resources"] == 1
    assert body["list_unsubscribe"] == ["https://example.com/unsub"]
    assert ["Subject", "Quarterly report: Q3/Q4"] in body["headers"]
    assert body["parse_errors"] == [] and body["seen"] is False
    assert {"id", "seq", "received_at", "expires_at"} <= set(body)
    logo, pdf, svg = body["attachments"]
    assert (logo["content_id"], logo["inline"], logo["size"]) == (
        "logo@example.com",
        True,
        len(PNG),
    )
    assert (pdf["filename"], pdf["content_type"], pdf["inline"]) == (
        "résumé 2026.pdf",
        "application/pdf",
        False,
    )
    assert svg["content_type"] == "image/svg+xml"
    text = (await world.client.get("/api/messages/text-ann", headers=_auth(ANN_TOKEN))).json()
    assert text["has_html"] is False and text["attachments"] == [] and text["remote_resources"] == 0


async def test_a_message_stored_without_a_document_answers_with_its_summary(
    world: World,
) -> None:
    now = utcnow()
    raw = b"Subject: raw only\r\n\r\nbody\r\n"
    bare = NewMessage(
        id="bare",
        address=ANN,
        ingest_id="bare",
        received_at=now,
        expires_at=now + timedelta(days=1),
        raw=raw,
        subject="raw only",
        parse_errors=("parser failed",),
    )
    await world.store.store_messages([bare], now)
    body = (await world.client.get("/api/messages/bare", headers=_auth(ANN_TOKEN))).json()
    assert (body["subject"], body["parse_errors"], body["text"], body["from"]) == (
        "raw only",
        ["parser failed"],
        "",
        [],
    )
    raw_response = await world.client.get("/api/messages/bare/raw", headers=_auth(ANN_TOKEN))
    assert raw_response.content == raw
    html = await world.client.get("/api/messages/bare/html", headers=_auth(ANN_TOKEN))
    _assert_error(html, 404, "not_found")


async def test_raw_is_the_exact_bytes_as_a_sandboxed_download(world: World) -> None:
    response = await world.client.get("/api/messages/multi-ann/raw", headers=_auth(ANN_TOKEN))
    assert response.status_code == 200
    assert response.content == world.raws["multi"]
    assert response.headers["content-type"] == "message/rfc822"
    assert response.headers["content-disposition"] == (
        'attachment; filename="Quarterly report_ Q3_Q4.eml"'
        "; filename*=UTF-8''Quarterly%20report%3A%20Q3_Q4.eml"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"


async def test_attachments_byte_for_byte_never_rendered_on_our_origin(world: World) -> None:
    doc = (await world.client.get("/api/messages/multi-ann", headers=_auth(ANN_TOKEN))).json()
    logo, pdf, svg = (a["id"] for a in doc["attachments"])
    base = "/api/messages/multi-ann/attachments"
    got_pdf = await world.client.get(f"{base}/{pdf}", headers=_auth(ANN_TOKEN))
    assert got_pdf.content == PDF and got_pdf.headers["content-type"] == "application/pdf"
    assert got_pdf.headers["content-disposition"] == (
        "attachment; filename=\"resume 2026.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202026.pdf"
    )
    got_logo = await world.client.get(f"{base}/{logo}", headers=_auth(ANN_TOKEN))
    assert got_logo.content == PNG and got_logo.headers["content-type"] == "image/png"
    got_svg = await world.client.get(f"{base}/{svg}", headers=_auth(ANN_TOKEN))
    assert got_svg.content == SVG
    assert got_svg.headers["content-type"] == "application/octet-stream"
    assert got_svg.headers["content-disposition"] == 'attachment; filename="evil.svg"'
    for response in (got_pdf, got_logo, got_svg):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "sandbox"
    _assert_error(await world.client.get(f"{base}/9", headers=_auth(ANN_TOKEN)), 404, "not_found")


async def test_html_is_sanitised_with_its_csp_and_inline_images(world: World) -> None:
    response = await world.client.get("/api/messages/multi-ann/html", headers=_auth(ANN_TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-tmpmail-remote-blocked"] == "1"
    assert response.headers["x-tmpmail-images-left-out"] == "0"
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in response.text
    assert "tracker.example" not in response.text
    remote = await world.client.get(
        "/api/messages/remote-ann/html", params={"remote": 1}, headers=_auth(ANN_TOKEN)
    )
    assert remote.headers["x-tmpmail-remote-blocked"] == "0" and "a.example" in remote.text
    text = await world.client.get("/api/messages/text-ann/html", headers=_auth(ANN_TOKEN))
    assert text.status_code == 200 and text.headers["content-security-policy"]
    assert "&lt;b&gt;" in text.text and "<a " in text.text and "https://example.com/x" in text.text


async def test_html_without_any_credential_is_401(world: World) -> None:
    _assert_error(await world.client.get("/api/messages/multi-ann/html"), 401, "unauthorized")


async def _signed_url(world: World, message_id: str, token: str, remote: int = 0) -> str:
    response = await world.client.get(
        f"/api/messages/{message_id}/html-url", params={"remote": remote}, headers=_auth(token)
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    url: str = response.json()["url"]
    assert ANN_TOKEN not in url and BOB_TOKEN not in url
    return url


async def test_a_signed_html_url_works_without_the_token(world: World) -> None:
    url = await _signed_url(world, "remote-ann", ANN_TOKEN)
    response = await world.client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["x-tmpmail-remote-blocked"] == "2"
    remote = await world.client.get(await _signed_url(world, "remote-ann", ANN_TOKEN, remote=1))
    assert remote.headers["x-tmpmail-remote-blocked"] == "0"


def _with(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


async def test_a_tampered_expired_or_misplaced_signature_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await _signed_url(world, "remote-ann", ANN_TOKEN)
    query = parse_qs(urlsplit(url).query)
    refused = [
        _with(url, remote="1"),  # another option than was signed
        _with(url, sig=query["sig"][0][:-2] + "AA"),
        _with(url, exp=str(int(query["exp"][0]) + 60)),
        _with(url, mailbox=BOB),
        _with(url, mailbox="nobody@tmpmail.test"),
        url.replace("remote-ann", "text-ann"),  # another message of the same mailbox
        _with(url, exp=""),
    ]
    for bad in refused:
        response = await world.client.get(bad)
        assert response.status_code in (401, 422), (bad, response.text)
        assert response.json()["error"]["code"] in ("unauthorized", "invalid")
    later = utcnow() + timedelta(minutes=6)
    monkeypatch.setattr("api.message_routes.utcnow", lambda: later)
    _assert_error(await world.client.get(url), 401, "unauthorized")


async def test_seen_and_deletes(world: World) -> None:
    auth = _auth(ANN_TOKEN)
    patched = await world.client.patch("/api/messages/text-ann", json={"seen": True}, headers=auth)
    assert patched.status_code == 200 and patched.json()["seen"] is True
    assert patched.json()["id"] == "text-ann"
    listed = (await world.client.get("/api/messages", headers=auth)).json()["messages"]
    assert {m["id"]: m["seen"] for m in listed}["text-ann"] is True
    bad = await world.client.patch("/api/messages/text-ann", json={"seen": "x"}, headers=auth)
    _assert_error(bad, 422, "invalid")

    assert (await world.client.delete("/api/messages/text-ann", headers=auth)).status_code == 204
    _assert_error(await world.client.get("/api/messages/text-ann", headers=auth), 404, "not_found")
    _assert_error(
        await world.client.delete("/api/messages/text-ann", headers=auth), 404, "not_found"
    )

    assert (await world.client.delete("/api/messages", headers=auth)).status_code == 204
    assert (await world.client.get("/api/messages", headers=auth)).json()["messages"] == []
    bobs = (await world.client.get("/api/messages", headers=_auth(BOB_TOKEN))).json()["messages"]
    assert [m["id"] for m in bobs] == ["text-bob"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("GET", "/raw"),
        ("GET", "/html"),
        ("GET", "/html-url"),
        ("GET", "/attachments/2"),
        ("PATCH", ""),
        ("DELETE", ""),
    ],
)
async def test_another_mailboxs_message_is_404_everywhere(
    world: World, method: str, path: str
) -> None:
    body = {"seen": True} if method == "PATCH" else None
    response = await world.client.request(
        method, f"/api/messages/multi-ann{path}", json=body, headers=_auth(BOB_TOKEN)
    )
    _assert_error(response, 404, "not_found")
    assert (await world.client.get("/api/messages/multi-ann", headers=_auth(ANN_TOKEN))).is_success


async def test_openapi_declares_the_routes_and_the_error_model(world: World) -> None:
    spec = (await world.client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "404" not in paths["/api/messages"]["delete"]["responses"]  # nothing to find
    for path, method in [
        ("/api/messages/{message_id}", "get"),
        ("/api/messages/{message_id}", "patch"),
        ("/api/messages/{message_id}", "delete"),
        ("/api/messages/{message_id}/raw", "get"),
        ("/api/messages/{message_id}/html", "get"),
        ("/api/messages/{message_id}/html-url", "get"),
        ("/api/messages/{message_id}/attachments/{attachment_id}", "get"),
    ]:
        responses = paths[path][method]["responses"]
        assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorBody"
        ), (path, method)
    assert "from" in spec["components"]["schemas"]["MessagePublic"]["properties"]


async def test_cid_images_above_the_bound_get_a_signed_url_for_that_one_attachment(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.message_service.INLINE_IMAGE_BYTES", len(PNG) - 1)
    signed = await world.client.get(await _signed_url(world, "multi-ann", ANN_TOKEN))
    assert signed.status_code == 200
    assert signed.headers["x-tmpmail-images-left-out"] == "0"
    assert "data:image/png" not in signed.text
    # The frame's opaque origin sends no cookie: the image comes by a URL signed for it,
    # absolute on our origin, which the document's CSP lets it load (and nothing else).
    found = re.search(r'<img src="(http://test/api/messages/multi-ann/attachments/([^"]+))"',
                      signed.text)  # fmt: skip
    assert found is not None, signed.text
    image_url = html.unescape(found.group(1))
    assert ANN_TOKEN not in image_url
    assert "img-src data: http://test;" in signed.headers["content-security-policy"]
    image = await world.client.get(image_url)
    assert image.status_code == 200, image.text
    assert image.content == PNG
    assert image.headers["content-disposition"].startswith("attachment")
    # Signed for that one attachment of that one message, and only for a few minutes.
    attachment_id = urlsplit(image_url).path.rsplit("/", 1)[1]
    other = next(
        a["id"]
        for a in (
            await world.client.get("/api/messages/multi-ann", headers=_auth(ANN_TOKEN))
        ).json()["attachments"]
        if a["id"] != attachment_id
    )
    for bad in [
        image_url.replace(attachment_id, other),
        _with(image_url, mailbox=BOB),
        _with(image_url, sig="A" * 43),
        image_url.replace("/multi-ann/", "/remote-ann/"),
    ]:
        _assert_error(await world.client.get(bad), 401, "unauthorized")
    later = utcnow() + timedelta(minutes=6)
    monkeypatch.setattr("api.message_routes.utcnow", lambda: later)
    _assert_error(await world.client.get(image_url), 401, "unauthorized")


async def test_cid_parts_of_a_type_we_never_inline_are_left_out_and_counted(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.message_service.INLINE_TYPES", frozenset({"image/gif"}))
    response = await world.client.get("/api/messages/multi-ann/html", headers=_auth(ANN_TOKEN))
    assert response.status_code == 200
    assert response.headers["x-tmpmail-images-left-out"] == "1"
    assert "data:image/png" not in response.text
    assert "/attachments/" not in response.text


# --- the reader's theme (?theme=light|dark on /html and /html-url) ----------------------------
_DARK_AWARE_HTML = (
    '<html><head><meta name="color-scheme" content="light dark"><style>'
    "body{background:#ffffff;color:#111111}"
    "@media (prefers-color-scheme: dark){body{background:#101418;color:#e6e6e6}}"
    "@media screen and (prefers-color-scheme: light){p{color:#222222}}"
    "</style></head><body><p>Dark-aware</p></body></html>"
)


async def _store_dark_aware(world: World) -> str:
    msg = EmailMessage()
    msg["From"] = "owl@night.example"
    msg["To"] = ANN
    msg["Subject"] = "Dark-aware"
    msg.set_content("Dark-aware (text part)\n")
    msg.add_alternative(_DARK_AWARE_HTML, subtype="html")
    results = await world.store.store_messages(
        [_new_message(ANN, msg.as_bytes(), "dark")], utcnow()
    )
    assert [r.status for r in results] == ["inserted"]
    return "dark-ann"


async def test_the_full_message_says_whether_its_html_supports_dark(world: World) -> None:
    dark_id = await _store_dark_aware(world)
    dark = await world.client.get(f"/api/messages/{dark_id}", headers=_auth(ANN_TOKEN))
    assert dark.status_code == 200, dark.text
    assert dark.json()["has_dark_mode"] is True
    multi = await world.client.get("/api/messages/multi-ann", headers=_auth(ANN_TOKEN))
    assert multi.json()["has_dark_mode"] is False
    text = await world.client.get("/api/messages/text-ann", headers=_auth(ANN_TOKEN))
    assert text.json()["has_dark_mode"] is False  # no HTML at all


async def _html(world: World, message_id: str, **params: str) -> httpx.Response:
    response = await world.client.get(
        f"/api/messages/{message_id}/html", params=params, headers=_auth(ANN_TOKEN)
    )
    assert response.status_code == 200, response.text
    return response


async def test_the_readers_theme_decides_the_mails_color_scheme(world: World) -> None:
    dark_id = await _store_dark_aware(world)
    # Dark page, dark-aware mail: a dark document whose dark queries always apply.
    dark = (await _html(world, dark_id, theme="dark")).text
    assert "color-scheme:dark !important" in dark
    assert "prefers-color-scheme" not in dark
    assert "@media (width >= 0){body{background:#101418" in dark
    assert "@media screen and (0 > width){p{color:#222222}}" in dark
    # Light page: its light queries apply, the dark ones never, whatever the system says.
    light = (await _html(world, dark_id, theme="light")).text
    assert "color-scheme:light !important" in light
    assert "@media (0 > width){body{background:#101418" in light
    assert "@media screen and (width >= 0){p{color:#222222}}" in light
    # Without a theme the document is as before: the system's preference decides.
    plain = (await _html(world, dark_id)).text
    assert "!important" not in plain and "(prefers-color-scheme: dark)" in plain
    # Mail without dark support keeps its light canvas on a dark page.
    multi = (await _html(world, "multi-ann", theme="dark")).text
    assert "color-scheme:light !important" in multi
    # Plain text has no colours of its own: it follows the page.
    assert "color-scheme:dark !important" in (await _html(world, "text-ann", theme="dark")).text
    assert "color-scheme:light !important" in (await _html(world, "text-ann", theme="light")).text
    bad = await world.client.get(
        f"/api/messages/{dark_id}/html", params={"theme": "sepia"}, headers=_auth(ANN_TOKEN)
    )
    _assert_error(bad, 422, "invalid")


async def test_the_theme_is_part_of_the_signed_url(world: World) -> None:
    dark_id = await _store_dark_aware(world)
    response = await world.client.get(
        f"/api/messages/{dark_id}/html-url",
        params={"remote": 0, "theme": "dark"},
        headers=_auth(ANN_TOKEN),
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    assert "theme=dark" in url and ANN_TOKEN not in url
    signed = await world.client.get(url)
    assert signed.status_code == 200, signed.text
    assert "color-scheme:dark !important" in signed.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    without_theme = (
        urlsplit(url).path + "?" + "&".join(f"{k}={v}" for k, v in query.items() if k != "theme")
    )
    for bad in (_with(url, theme="light"), without_theme):
        _assert_error(await world.client.get(bad), 401, "unauthorized")
    # A URL signed without a theme does not take one.
    plain = await _signed_url(world, dark_id, ANN_TOKEN)
    _assert_error(await world.client.get(_with(plain, theme="dark")), 401, "unauthorized")
