"""The web inbox: one page and its assets, served by the API process from ``api/web/``.

No build step and no front-end server: ``GET /`` is ``web/index.html``, ``GET
/assets/<name>`` any other file of ``web/`` (ES modules, the stylesheet, the icon). The
page owns no state; it renders what ``/api`` returns and listens on ``/api/events``.

Every response carries the page's own policy (:data:`PAGE_HEADERS`): scripts and styles
only from this origin (no inline script, no ``style`` attribute), frames only from this
origin (the sanitised mail, ``/api/messages/{id}/html``, in ``<iframe sandbox>``),
nothing may frame the page, ``nosniff`` and a referrer kept on our own origin. The
files are small: each is read when it changes (its mtime) and kept, with a strong
``ETag`` so that a reload costs a 304.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from api.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent / "web"

PAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: some browsers then send `Origin: null` on our own POSTs, which
    # api.origin refuses. same-origin sends nothing to any other site.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.[a-z]{2,12}")

page_router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str
    mtime_ns: int


class AssetCache:
    """The files of ``web/``, each read once per change of its mtime."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._assets: dict[str, Asset] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Asset | None:
        media_type = MEDIA_TYPES.get(Path(name).suffix)
        if media_type is None or not _ASSET_NAME.fullmatch(name):
            return None
        path = self.root / name
        try:
            mtime_ns = path.stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            cached = self._assets.get(name)
        if cached is not None and cached.mtime_ns == mtime_ns:
            return cached
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        asset = Asset(body, media_type, etag, mtime_ns)
        with self._lock:
            self._assets[name] = asset
        return asset


_assets = AssetCache(WEB_DIR)


def _serve(request: Request, name: str) -> Response:
    asset = _assets.get(name)
    if asset is None:
        raise NotFound("no such file")
    headers = {**PAGE_HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


# Plain ``def``: FastAPI runs them in its thread pool, so a file read never blocks the loop.
@page_router.api_route("/", methods=["GET", "HEAD"])
def index_page(request: Request) -> Response:
    """The web inbox."""
    return _serve(request, "index.html")


@page_router.api_route("/assets/{name}", methods=["GET", "HEAD"])
def page_asset(request: Request, name: str) -> Response:
    """A script, stylesheet or icon of the page."""
    if name == "index.html":
        raise NotFound("no such file")
    return _serve(request, name)
