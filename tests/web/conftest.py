"""Fixtures for the web inbox in real headless Chromium (Debian's ``/usr/bin/chromium``).

Playwright for Python drives the browser; it cannot download one here, so it launches
the system's (``TMPMAIL_CHROMIUM`` overrides the path). Every page a test opens records
what ran or failed: ``console`` messages, uncaught ``pageerror``s, dialogs, and every
request the page (or a frame in it) made, so that a test can assert that nothing ran.

* ``browser``: one Chromium for the session.
* ``web_stack``: the whole stack on SQLite (``stack_sqlite``), the page at ``base_url``.
* ``open_page(color_scheme=..., width=...)``: a fresh context (no cookies) and page,
  returned with its :class:`PageLog`.
* ``axe_source``: axe-core's script, installed from npm once into ``.tmpmail-test/npm``.
* Screenshots go to ``.tmpmail-test/screenshots`` (ignored by git): :func:`screenshot`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from schemas.settings import Settings
from tests.conftest import REPO

CHROMIUM = os.environ.get("TMPMAIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AXE_VERSION = "4.11.0"
NPM_DIR = REPO / ".tmpmail-test" / "npm"
SCREENSHOT_DIR = REPO / ".tmpmail-test" / "screenshots"
PHONE_WIDTH = 360


@dataclass
class PageLog:
    """What one page did: console lines, uncaught errors, dialogs, requests (URLs)."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


# Package scope, not session: while Playwright's sync API is open it keeps an event
# loop running in this thread, and every asyncio test after it would fail with
# "Runner.run() cannot be called from a running event loop".
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`; "
            ".ci/run does) or set TMPMAIL_CHROMIUM",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def web_stack(stack_sqlite: Settings) -> Settings:
    return stack_sqlite


@pytest.fixture
def base_url(web_stack: Settings) -> str:
    return web_stack.http_url


@pytest.fixture
def open_page(browser: Any, base_url: str) -> Iterator[Callable[..., tuple[Any, PageLog]]]:
    contexts: list[Any] = []

    def open_(
        *, color_scheme: str = "light", width: int = 1280, height: int = 900
    ) -> tuple[Any, PageLog]:
        context = browser.new_context(
            base_url=base_url,
            color_scheme=color_scheme,
            viewport={"width": width, "height": height},
            accept_downloads=True,
        )
        contexts.append(context)
        page = context.new_page()
        log = PageLog()
        page.on("console", lambda message: log.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: log.errors.append(str(error)))

        def on_dialog(dialog: Any) -> None:
            log.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        context.on("request", lambda request: log.requests.append(request.url))
        return page, log

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's browser script, from npm (installed once per checkout)."""
    script = NPM_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install axe-core for the accessibility test")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR),
             f"axe-core@{AXE_VERSION}"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0 or not script.exists():
            pytest.fail(f"npm install axe-core failed:\n{result.stdout}{result.stderr}")
    return script.read_text()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact (``.tmpmail-test/screenshots``)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- helpers for the flows ------------------------------------------------------------------
#: How long a test waits for the page (a mail crosses SMTP, Kafka, streams and SSE).
WAIT_MS = 15_000


def open_inbox(page: Any, *, live: bool = True) -> str:
    """Go to the page, wait until it shows a mailbox (and its live stream is open);
    returns the address it shows."""
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    if live:
        expect(page.get_by_test_id("live-status")).to_have_attribute(
            "data-state", "open", timeout=WAIT_MS
        )
    address: str = page.get_by_test_id("address").inner_text()
    return address


def send(settings: Settings, to: str, data: bytes) -> None:
    """One mail over real SMTP to the test stack."""
    from tests.e2e.helpers import send_raw

    assert send_raw(settings, to, data) == {}


def items(page: Any) -> Any:
    return page.get_by_test_id("message-list").get_by_test_id("message-item")


def item_with_subject(page: Any, subject: str) -> Any:
    return items(page).filter(has=page.get_by_test_id("item-subject").get_by_text(subject))


def mail_frame(page: Any) -> Any:
    """The open message's sandboxed frame, once its document has loaded."""
    handle = page.locator("iframe[data-testid=message-html]").element_handle(timeout=WAIT_MS)
    frame = handle.content_frame()
    assert frame is not None
    frame.wait_for_load_state()
    return frame


def token_cookie(page: Any) -> str:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return cookies["tmpmail_token"]


def answer_mailbox_ended(page: Any, code: str, message: str) -> None:
    """Make ``GET /api/mailbox`` answer the API's 401 for a mailbox that has ended (its
    ``code``: ``mailbox_expired`` or ``mailbox_deleted``), for states a test cannot wait
    days for."""
    body = json.dumps({"error": {"code": code, "message": message}})
    page.route(
        "**/api/mailbox",
        lambda route: route.fulfill(
            status=401, headers={"Content-Type": "application/json"}, body=body
        ),
    )
