"""Accessibility of the web inbox: axe-core finds no serious or critical violation, in
both themes, at desktop and phone width, on the inbox and on an open message.

axe runs through ``page.evaluate`` (DevTools evaluation is not subject to the page's
CSP, which refuses inline scripts). The mail's own document in the sandboxed frame is
the sender's, not ours: axe checks the page around it (``iframes: false``).
"""

from __future__ import annotations

import json
from typing import Any

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
    send,
)

BLOCKING = ("serious", "critical")
AXE_RUN = """async () => {
  const result = await axe.run(document, {
    iframes: false,
    resultTypes: ["violations"],
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa",
                                   "best-practice"]},
  });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary),
  }));
}"""


def _violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source)
    # Let transitions (the toast) settle before colours are measured.
    page.wait_for_timeout(200)
    found: list[dict[str, Any]] = page.evaluate(AXE_RUN)
    return [v for v in found if v["impact"] in BLOCKING]


def _set_theme(page: Any, theme: str) -> None:
    if page.locator("html").get_attribute("data-theme") != theme:
        page.get_by_test_id("theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", theme)


def test_no_serious_axe_violation(open_page: Any, web_stack: Settings, axe_source: str) -> None:
    """One mailbox, looked at in both themes at desktop and phone width (the theme is
    switched with the page's toggle; a dark system is tests/web/test_flows.py's)."""
    page, _log = open_page()
    address = open_inbox(page)
    send(web_stack, address, mails.newsletter_mail(address))
    send(web_stack, address, mails.text_mail(address))
    expect(items(page)).to_have_count(2, timeout=WAIT_MS)
    page.locator("#recent summary").evaluate("s => s.parentElement.open = true")
    problems: dict[str, list[dict[str, Any]]] = {}
    for theme, width in [
        ("light", 1280),
        ("dark", 1280),
        ("light", PHONE_WIDTH),
        ("dark", PHONE_WIDTH),
    ]:
        view = f"{theme} {width}px"
        page.set_viewport_size({"width": width, "height": 900})
        _set_theme(page, theme)
        page.get_by_test_id("username-input").fill("x y")
        page.get_by_test_id("username-submit").click()
        expect(page.locator("#form-error")).not_to_be_empty()
        problems[f"{view}: inbox, with a form error"] = _violations(page, axe_source)

        item_with_subject(page, "Your weekly digest").click()
        mail_frame(page)
        expect(page.get_by_test_id("remote-bar")).to_be_visible()
        problems[f"{view}: html message"] = _violations(page, axe_source)
        page.get_by_test_id("view-raw").click()
        expect(page.get_by_test_id("raw-source")).to_contain_text("Subject:")
        problems[f"{view}: raw source"] = _violations(page, axe_source)
        page.get_by_test_id("view-raw").click()
        if width > PHONE_WIDTH:  # at phone width the reader stands in for the list
            item_with_subject(page, "Your sign-in link").click()
            expect(page.get_by_test_id("message-text")).to_be_visible()
            problems[f"{view}: text message"] = _violations(page, axe_source)
        page.get_by_test_id("close-message").click()
    assert {state: found for state, found in problems.items() if found} == {}, json.dumps(
        problems, indent=1
    )


def test_the_ended_state_too(open_page: Any, axe_source: str) -> None:
    page, _log = open_page()
    open_inbox(page, live=False)
    answer_mailbox_ended(page, "mailbox_deleted", "this mailbox was deleted")
    page.reload()
    expect(page.get_by_test_id("mailbox-state")).to_be_visible()
    for theme in ("light", "dark"):
        _set_theme(page, theme)
        assert _violations(page, axe_source) == [], theme
