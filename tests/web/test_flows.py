"""The web inbox in real headless Chromium against the whole stack: what a person does.

Every test opens a fresh browser context (no cookies), so it starts with a mailbox of
its own; mail goes in over real SMTP and comes out through Kafka, streams and SSE.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from schemas.settings import Settings
from tests.web import mails
from tests.web.conftest import (
    PHONE_WIDTH,
    WAIT_MS,
    answer_mailbox_ended,
    item_with_subject,
    items,
    mail_frame,
    open_inbox,
    screenshot,
    send,
    token_cookie,
)

ADDRESS_RE = re.compile(r"^[a-z0-9._-]+@[a-z0-9.-]+\.[a-z]+$")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_first_visit_has_an_address_at_once_and_a_reload_restores_it(open_page: Any) -> None:
    page, log = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    address = open_inbox(page)
    assert ADDRESS_RE.match(address), address
    assert page.title() == f"{address} · tmpmail"
    expect(page.get_by_test_id("time-left")).to_have_text(re.compile(r"Expires in 1[45] days"))
    expect(page.get_by_test_id("extend")).to_be_disabled()  # no mail yet, and new
    page.get_by_test_id("copy-address").click()
    expect(page.get_by_test_id("copy-address")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == address

    page.reload()
    assert open_inbox(page) == address
    assert log.errors == [] and log.dialogs == []


def test_the_countdown_uses_the_servers_clock(open_page: Any) -> None:
    page, _log = open_page()
    # This browser's clock is three days ahead of the server's.
    page.clock.install(time=datetime.now() + timedelta(days=3))
    open_inbox(page, live=False)
    expect(page.get_by_test_id("time-left")).to_have_text(
        re.compile(r"Expires in (15 days|14 days 23 hours)")
    )


def test_shuffle_domain_custom_username_errors_and_recent(open_page: Any) -> None:
    page, log = open_page()
    first = open_inbox(page)
    address = page.get_by_test_id("address")

    page.get_by_test_id("domain-select").select_option("quickbox.test")
    page.get_by_test_id("shuffle").click()
    expect(address).not_to_have_text(first)
    expect(address).to_have_text(re.compile(r"@quickbox\.test$"))
    second = address.inner_text()

    name = _unique("web")
    page.get_by_test_id("domain-select").select_option("burner.test")
    page.get_by_test_id("username-input").fill(name)
    page.get_by_test_id("username-submit").click()
    expect(address).to_have_text(f"{name}@burner.test")
    expect(page.get_by_test_id("username-input")).to_have_value("")
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "open")

    # 409: the name is taken (by this very mailbox).
    page.get_by_test_id("username-input").fill(name)
    page.get_by_test_id("username-submit").click()
    error = page.locator("#form-error")
    expect(error).to_contain_text("taken")
    expect(page.get_by_test_id("username-input")).to_have_attribute("aria-invalid", "true")
    expect(address).to_have_text(f"{name}@burner.test")
    # 422: not a valid name.
    page.get_by_test_id("username-input").fill("no spaces allowed")
    page.get_by_test_id("username-submit").click()
    expect(error).not_to_contain_text("taken")
    expect(error).not_to_be_empty()
    # 429, as the server would send it: the wait is shown.
    page.route(
        "**/api/mailboxes",
        lambda route: (
            route.fulfill(
                status=429,
                headers={"Retry-After": "7", "Content-Type": "application/json"},
                body='{"error": {"code": "rate_limited", "message": "slow down"}}',
            )
            if route.request.method == "POST"
            else route.fallback()
        ),
    )
    page.get_by_test_id("shuffle").click()
    expect(error).to_contain_text("Try again in 7 s")
    page.unroute("**/api/mailboxes")

    # Back to an earlier address through the recent list.
    page.locator("#recent summary").click()
    recent = page.get_by_test_id("recent-list")
    for earlier in (first, second):
        expect(recent).to_contain_text(earlier)
    recent.locator("li", has_text=first).get_by_role("button").click()
    expect(address).to_have_text(first)
    expect(recent.locator("li[aria-current=true]")).to_contain_text(first)
    page.reload()
    assert open_inbox(page) == first
    assert log.errors == []


def test_mail_arrives_live_and_reads_whole(open_page: Any, web_stack: Settings) -> None:
    page, log = open_page()
    address = open_inbox(page)
    screenshot(page, "inbox-empty-light")
    newsletter = mails.newsletter_mail(address)
    send(web_stack, address, mails.text_mail(address))
    send(web_stack, address, newsletter)

    expect(items(page)).to_have_count(2, timeout=WAIT_MS)  # no reload
    expect(items(page).first.get_by_test_id("item-subject")).to_have_text("Your weekly digest")
    expect(items(page).first.get_by_test_id("item-from")).to_have_text("Acme Digest")
    expect(items(page).first).to_have_attribute("data-seen", "false")
    expect(page).to_have_title(f"(2) {address} · tmpmail")
    expect(page.locator("#announcer")).to_contain_text("New message from")
    screenshot(page, "inbox-light")

    digest = item_with_subject(page, "Your weekly digest")
    digest.click()
    expect(page.get_by_test_id("message-subject")).to_have_text("Your weekly digest")
    expect(page.get_by_test_id("message-from")).to_have_text("Acme Digest <digest@acme.example>")
    expect(page.get_by_test_id("message-to")).to_have_text(address)
    expect(page.get_by_test_id("message-date")).to_have_attribute("datetime", re.compile(r"^20"))
    expect(digest).to_have_attribute("data-seen", "true")  # PATCHed on open
    expect(page).to_have_title(f"(1) {address} · tmpmail")

    frame_element = page.locator("iframe[data-testid=message-html]")
    expect(frame_element).to_have_attribute(
        "sandbox", "allow-popups allow-popups-to-escape-sandbox"
    )
    expect(frame_element).to_have_attribute(
        "src", re.compile(r"/html\?remote=0&theme=light&.*sig=")
    )
    frame = mail_frame(page)
    assert frame.locator("h1").inner_text() == "Your weekly digest"
    assert frame.locator("img[src^='data:image/png']").count() == 1  # the cid: logo
    assert frame.locator("img[src*='tracker.example']").count() == 0
    expect(page.get_by_test_id("remote-bar")).to_be_visible()
    expect(page.get_by_test_id("remote-bar")).to_contain_text("2 remote resources")
    screenshot(page, "message-html-light")

    page.get_by_test_id("load-remote").click()
    expect(page.get_by_test_id("remote-bar")).to_be_hidden()
    expect(frame_element).to_have_attribute("src", re.compile(r"remote=1"))
    assert mail_frame(page).locator("img[src*='tracker.example']").count() == 1

    attachments = page.get_by_test_id("attachment")
    expect(attachments).to_have_count(2)
    expect(attachments.first).to_contain_text("report Q3.pdf")
    expect(attachments.first).to_contain_text("528 bytes")
    with page.expect_download() as download_info:
        attachments.first.click()
    assert Path(download_info.value.path()).read_bytes() == mails.REPORT_PDF

    with page.expect_download() as eml_info:
        page.get_by_test_id("download-eml").click()
    eml = Path(eml_info.value.path()).read_bytes()
    assert eml.startswith(b"Received: ") and eml.endswith(newsletter)

    page.get_by_test_id("view-raw").click()
    raw = page.get_by_test_id("raw-source")
    expect(raw).to_contain_text("Subject: Your weekly digest")
    expect(raw).to_contain_text("Content-Type: multipart/mixed")
    assert raw.inner_text().startswith("Received: ")
    page.get_by_test_id("view-raw").click()
    expect(raw).to_be_hidden()

    # Plain text: links made with DOM nodes, only http(s) and mailto, text stays text.
    item_with_subject(page, "Your sign-in link").click()
    text = page.get_by_test_id("message-text")
    expect(text).to_contain_text("The code is 482913")
    hrefs = text.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert hrefs == [
        "https://acme.example/login?token=abc123&next=%2Fhome",
        "mailto:help@acme.example",
        "https://www.acme.example/help",
    ]
    assert text.locator("a").first.get_attribute("rel") == "noopener noreferrer"
    assert text.locator("b").count() == 0
    expect(text).to_contain_text("<b>not bold</b>")
    expect(page).to_have_title(f"{address} · tmpmail")
    assert log.errors == [] and log.dialogs == []


def test_subject_names_and_filenames_are_text(open_page: Any, web_stack: Settings) -> None:
    page, log = open_page()
    address = open_inbox(page)
    send(web_stack, address, mails.hostile_subject_mail(address))
    expect(items(page)).to_have_count(1, timeout=WAIT_MS)
    item = items(page).first
    expect(item.get_by_test_id("item-subject")).to_contain_text('<img src=x onerror="document')
    item.click()
    expect(page.get_by_test_id("message-subject")).to_contain_text("<img src=x")
    expect(page.get_by_test_id("message-from")).to_contain_text("<b onmouseover=alert(1)>Eve</b>")
    expect(page.get_by_test_id("attachment")).to_contain_text('<img src=x onerror="alert(1)">')
    assert page.locator("main img, main b").count() == 0
    assert "pwned" not in page.title()
    assert log.errors == [] and log.dialogs == []


def test_delete_one_then_all(open_page: Any, web_stack: Settings) -> None:
    page, _log = open_page()
    address = open_inbox(page)
    for n in range(3):
        send(web_stack, address, mails.text_mail(address, subject=f"Mail {n}"))
    expect(items(page)).to_have_count(3, timeout=WAIT_MS)
    # Three messages: the mailbox may now be extended.
    extend = page.get_by_test_id("extend")
    expect(extend).to_be_enabled(timeout=WAIT_MS)
    before = page.get_by_test_id("time-left").inner_text()
    extend.click()
    expect(page.get_by_test_id("time-left")).not_to_have_text(before)
    expect(page.get_by_test_id("time-left")).to_have_text(re.compile(r"Expires in (29|30) days"))

    item_with_subject(page, "Mail 1").click()
    expect(page.get_by_test_id("message-subject")).to_have_text("Mail 1")
    page.get_by_test_id("delete-message").click()
    expect(items(page)).to_have_count(2)
    expect(item_with_subject(page, "Mail 1")).to_have_count(0)
    listed = page.request.get("/api/messages").json()["messages"]
    assert sorted(m["subject"] for m in listed) == ["Mail 0", "Mail 2"]

    page.get_by_test_id("delete-all").click()
    expect(items(page)).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    assert page.request.get("/api/messages").json()["messages"] == []
    page.reload()
    open_inbox(page)
    expect(items(page)).to_have_count(0)
    assert page.get_by_test_id("address").inner_text() == address


def test_keyboard_alone(open_page: Any, web_stack: Settings) -> None:
    page, _log = open_page()
    address = open_inbox(page)
    for subject in ("First", "Second"):
        send(web_stack, address, mails.text_mail(address, subject=subject))
    expect(items(page)).to_have_count(2, timeout=WAIT_MS)

    page.locator("body").focus()
    for _ in range(40):  # Tab through the page in order until the first message
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.testid") == "message-item":
            break
    else:
        raise AssertionError("no message item is reachable with Tab")
    focused = page.locator(":focus")
    expect(focused.get_by_test_id("item-subject")).to_have_text("Second")
    page.keyboard.press("ArrowDown")
    expect(page.locator(":focus").get_by_test_id("item-subject")).to_have_text("First")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("message-subject")).to_have_text("First")
    expect(page.get_by_test_id("message-subject")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("message-subject")).to_be_hidden()
    expect(page.locator(":focus").get_by_test_id("item-subject")).to_have_text("First")
    page.keyboard.press("ArrowUp")
    page.keyboard.press(" ")
    expect(page.get_by_test_id("message-subject")).to_have_text("Second")
    outline = page.evaluate(
        "(() => { const b = document.querySelector('[data-testid=view-raw]'); b.focus();"
        " return getComputedStyle(b).outlineStyle })()"
    )
    assert outline != "none"


def test_dark_mode_the_toggle_and_mail_canvases(open_page: Any, web_stack: Settings) -> None:
    # The system prefers light; the reader picks dark on the page.
    page, log = open_page(color_scheme="light")
    address = open_inbox(page)
    send(web_stack, address, mails.text_mail(address))
    send(web_stack, address, mails.newsletter_mail(address))
    send(web_stack, address, mails.dark_aware_mail(address))
    expect(items(page)).to_have_count(3, timeout=WAIT_MS)
    toggle = page.get_by_test_id("theme-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    page_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert page_background == "rgb(13, 15, 19)"
    screenshot(page, "inbox-dark")

    # Mail that declares dark support is dark, although the frame's system says light.
    item_with_subject(page, "Dark-aware").click()
    frame_element = page.locator("iframe[data-testid=message-html]")
    expect(frame_element).to_have_attribute("src", re.compile(r"theme=dark"))
    expect(frame_element).to_have_class(re.compile(r"\bis-dark\b"))
    frame = mail_frame(page)
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(16, 20, 24)"
    assert frame.evaluate("getComputedStyle(document.documentElement).colorScheme") == "dark"
    screenshot(page, "message-dark-aware-dark")

    # Other HTML mail keeps its own light canvas inside the dark page.
    item_with_subject(page, "Your weekly digest").click()
    expect(frame_element).to_have_class(re.compile(r"\bis-light\b"))
    frame = mail_frame(page)
    assert frame.evaluate("getComputedStyle(document.documentElement).colorScheme") == "light"
    assert frame.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor") == (
        "rgb(255, 255, 255)"
    )
    screenshot(page, "message-html-dark")

    # Plain text follows the page.
    item_with_subject(page, "Your sign-in link").click()
    text_color = page.get_by_test_id("message-text").evaluate("e => getComputedStyle(e).color")
    assert text_color == "rgb(232, 234, 239)"

    # The choice outlives a reload; back to light, the dark-aware mail is light too.
    page.reload()
    open_inbox(page)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    item_with_subject(page, "Dark-aware").click()
    expect(frame_element).to_have_attribute("src", re.compile(r"theme=light"))
    frame = mail_frame(page)
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    assert log.errors == []


def test_a_dark_system_with_the_light_toggle(open_page: Any, web_stack: Settings) -> None:
    page, _log = open_page(color_scheme="dark")
    address = open_inbox(page)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    send(web_stack, address, mails.dark_aware_mail(address))
    expect(items(page)).to_have_count(1, timeout=WAIT_MS)
    items(page).first.click()
    frame = mail_frame(page)
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(16, 20, 24)"
    page.get_by_test_id("theme-toggle").click()
    frame_element = page.locator("iframe[data-testid=message-html]")
    expect(frame_element).to_have_attribute("src", re.compile(r"theme=light"))
    # The frame's system still prefers dark: the page's choice decides.
    frame = mail_frame(page)
    assert frame.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is True
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    assert frame.evaluate("getComputedStyle(document.body).color") == "rgb(17, 17, 17)"


def test_phone_width(open_page: Any, web_stack: Settings) -> None:
    page, log = open_page(width=PHONE_WIDTH, height=760)
    address = open_inbox(page)
    send(web_stack, address, mails.newsletter_mail(address))
    send(web_stack, address, mails.text_mail(address))
    expect(items(page)).to_have_count(2, timeout=WAIT_MS)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    screenshot(page, "inbox-phone")

    item_with_subject(page, "Your weekly digest").click()
    expect(page.get_by_test_id("message-subject")).to_be_visible()
    expect(page.get_by_test_id("message-list")).to_be_hidden()
    mail_frame(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    screenshot(page, "message-html-phone")
    page.get_by_test_id("close-message").click()
    expect(page.get_by_test_id("message-list")).to_be_visible()
    expect(page.get_by_test_id("message-subject")).to_be_hidden()
    assert log.errors == []


def test_notifications_are_asked_for_on_a_click(open_page: Any) -> None:
    page, _log = open_page()
    page.context.grant_permissions(["notifications"])
    open_inbox(page, live=False)
    toggle = page.get_by_test_id("notify-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")


def test_a_deleted_mailbox_shows_its_state_and_offers_a_new_address(
    open_page: Any, web_stack: Settings
) -> None:
    page, log = open_page()
    address = open_inbox(page)
    # Deleted elsewhere (a script with this browser's cookie); the browser keeps it.
    response = httpx.delete(
        f"{web_stack.http_url}/api/mailbox",
        headers={"Cookie": f"tmpmail_token={token_cookie(page)}"},
    )
    assert response.status_code == 204, response.text
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    state = page.get_by_test_id("mailbox-state")
    expect(state).to_be_visible()
    expect(state).to_have_attribute("data-state", "deleted")
    expect(page.get_by_test_id("message-list")).to_be_hidden()
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "closed")
    screenshot(page, "mailbox-deleted")

    page.get_by_test_id("new-address").click()
    expect(state).to_be_hidden()
    fresh = page.get_by_test_id("address")
    expect(fresh).to_have_text(ADDRESS_RE)
    assert fresh.inner_text() != address
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "open")
    assert log.errors == []


def test_deleted_while_the_page_is_open(open_page: Any, web_stack: Settings) -> None:
    page, _log = open_page()
    address = open_inbox(page)
    send(web_stack, address, mails.text_mail(address))
    expect(items(page)).to_have_count(1, timeout=WAIT_MS)
    # The page's own cookie deletes it (this clears the cookie, as the API answers).
    assert page.request.delete("/api/mailbox").status == 204
    items(page).first.click()  # the next thing the reader does finds it gone
    expect(page.get_by_test_id("mailbox-state")).to_have_attribute("data-state", "deleted")
    expect(page.get_by_test_id("mailbox-state")).to_be_visible()


def test_an_expired_mailbox_shows_its_state(open_page: Any) -> None:
    page, _log = open_page()
    open_inbox(page, live=False)
    # The API's answer for a token whose mailbox has expired (the lifetime is days).
    answer_mailbox_ended(page, "mailbox_expired", "this mailbox has expired")
    page.reload()
    state = page.get_by_test_id("mailbox-state")
    expect(state).to_have_attribute("data-state", "expired")
    expect(state).to_be_visible()
    expect(state).to_contain_text("expired")
    expect(page.get_by_test_id("new-address")).to_be_visible()


LINKIFY_JS = """async (cases) => {
  const { linkifyInto } = await import("/assets/linkify.js");
  return cases.map((text) => {
    const box = document.createElement("div");
    linkifyInto(box, text);
    const links = [...box.querySelectorAll("a")]
      .map((a) => [a.textContent, a.getAttribute("href")]);
    return { same: box.textContent === text, elements: box.querySelectorAll("*").length, links };
  });
}"""


def test_links_in_plain_text_are_made_with_dom_nodes(open_page: Any) -> None:
    page, _log = open_page()
    open_inbox(page, live=False)
    cases = {
        "see (https://en.wikipedia.org/wiki/Foo_(bar)) now": [
            ["https://en.wikipedia.org/wiki/Foo_(bar)", "https://en.wikipedia.org/wiki/Foo_(bar)"]
        ],
        "go to https://x.example/a.": [["https://x.example/a", "https://x.example/a"]],
        "<https://x.example/y>": [["https://x.example/y", "https://x.example/y"]],
        "write bob@example.com!": [["bob@example.com", "mailto:bob@example.com"]],
        "www.example.org/path, then": [["www.example.org/path", "https://www.example.org/path"]],
        "javascript:alert(1) vbscript:x data:text/html,<b>x</b>": [],
        "https://exa mple": [],
        '<a href="https://evil.example">x</a>': [["https://evil.example", "https://evil.example/"]],
    }
    results = page.evaluate(LINKIFY_JS, list(cases))
    for (text, links), result in zip(cases.items(), results, strict=True):
        assert result["same"], text  # every character is still there, as text
        assert result["links"] == links, text
        assert result["elements"] == len(links), text  # nothing but the links
