"""The web inbox's files as the API serves them: its policy headers, caching, no path
out of ``api/web``, and a page whose markup and scripts never need inline code or put
mail data into HTML. (What the page does: tests/web, in a real browser.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.page_routes import PAGE_CSP, WEB_DIR
from schemas.settings import Settings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(state_dir=tmp_path)  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: no broker
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _directives(csp: str) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in csp.split(";") if part.strip()}


async def test_the_page_is_served_at_the_root_with_its_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == (WEB_DIR / "index.html").read_text()
    csp = _directives(response.headers["content-security-policy"])
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["frame-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["connect-src"] == "'self'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    head = await client.head("/")
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("theme.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
        ("file.svg", "image/svg+xml"),
    ],
)
async def test_assets_with_their_types_and_a_revalidating_cache(
    client: httpx.AsyncClient, name: str, media_type: str
) -> None:
    response = await client.get(f"/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (WEB_DIR / name).read_bytes()
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == PAGE_CSP
    etag = response.headers["etag"]
    again = await client.get(f"/assets/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag


@pytest.mark.parametrize(
    "path",
    [
        "/assets/index.html",
        "/assets/missing.js",
        "/assets/..%2Fpage_routes.py",
        "/assets/%2e%2e%2fapp.py",
        "/assets/.hidden.js",
        "/assets/app.js.map",
        "/assets/APP.JS",
    ],
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


async def test_the_page_is_not_in_the_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and not any(p.startswith("/assets") for p in paths)


def test_the_markup_needs_no_inline_script_or_style() -> None:
    html = (WEB_DIR / "index.html").read_text()
    for script in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r'\bsrc="/assets/[a-z]+\.js"', script), script
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None  # no inline body
    assert re.search(r"\sstyle\s*=", html) is None
    assert re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE) is None
    assert "<style" not in html
    assert re.search(r'(src|href)="(https?:)?//', html) is None  # nothing remote
    frame = re.search(r"<iframe\b[^>]*>", html)
    assert frame is not None
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame.group()


@pytest.mark.parametrize("name", sorted(p.name for p in WEB_DIR.glob("*.js")))
def test_scripts_use_no_html_sinks_and_load_nothing_remote(name: str) -> None:
    source = (WEB_DIR / name).read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("style"',
        "srcdoc",
        "allow-scripts",
        "allow-same-origin",
    ):
        assert sink not in source, f"{name} uses {sink}"
    assert re.search(r"""["'`]https?://[a-z0-9]""", source) is None, f"{name} names a remote URL"
