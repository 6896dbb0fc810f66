"""Hostile mail in real headless Chromium: nothing runs, and, while remote content is
blocked, nothing loads.

Every payload of the corpus (:mod:`tests.web.hostile.payloads`) names URLs of a counting
HTTP server on loopback (:class:`~tests.web.hostile_support.CountingServer`) or unique
paths on the stack's own origin, and its script reports itself every way we watch: a
request to the counting server, ``alert`` (a dialog), ``parent.postMessage``,
``window.name``, ``top.document.title``. The mails go over SMTP to the real stack.

1. **The detector works**: each payload unsanitised, in a plain page, does in Chromium
   what the corpus says (runs, or loads), and every channel reports it.
2. **The served documents**: each signed ``/html`` URL opened top-level (only the CSP
   stands between the mail and our origin) and in ``<iframe sandbox="allow-popups
   allow-popups-to-escape-sandbox">`` of a page on the stack's origin: no script, no
   request, no navigation, and Chromium's own parse of the document holds nothing that
   could run or load. With remote content allowed, images load and still nothing runs.
3. **Attachments and raw bytes** are downloads, whatever their type or name.
4. **The inbox page** (``/``), the acceptance: the mails sent to the address the page
   shows, opened by clicking them; subjects, names and file names are literal text.

Absence is watched for :data:`QUIET_S` after the loads; the self-check shows that the
payloads report well within it. Run with ``TMPMAIL_TEST_SLOT=N`` beside other stacks.
"""

from __future__ import annotations

import re
import smtplib
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from schemas.settings import Settings
from tests.conftest import StackSwitch
from tests.web.hostile.payloads import HEADER_MAILS, PAYLOADS
from tests.web.hostile_support import (
    CID_PID,
    DOCUMENT_TAGS,
    INSPECT_JS,
    NEVER,
    RAN,
    REMOTE_OK,
    TRIGGER_JS,
    Corpus,
    CountingServer,
    Hit,
    Urls,
    csp_problems,
    message_id,
    own_origin_pids,
    payload_document,
)

#: How long after the loads we keep watching for what must not happen.
QUIET_S = 1.0
#: A page of some 200 frames, on a busy machine.
GRID_TIMEOUT_MS = 180_000
#: The iframe sandbox of the page's contract.
FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
ALL_TRIGGERS = ["focus", "hover", "click"]
#: Elements only the hostile header markup could make (each has ``data-hostile``, or an
#: attribute of the mail's), never the page's own.
MARKUP_MADE = "[data-hostile], script, iframe, object, embed, img[src=x], [onerror], [onload]"
#: Types a browser could run or render as a document.
RENDERABLE = ("text/html", "image/svg", "application/xhtml", "text/xml", "application/xml")

OpenPage = Callable[..., tuple[Any, Any]]


# ----------------------------------------------------------------- fixtures


@dataclass
class Delivered:
    """The corpus, stored in one mailbox of the running stack."""

    settings: Settings
    server: CountingServer
    corpus: Corpus
    token: str
    address: str
    #: pid -> message id.
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def run(self) -> str:
        return self.corpus.urls.run

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.settings.http_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def signed_urls(
        self, pids: Iterable[str], *, remote: bool = False, theme: str | None = None
    ) -> dict[str, str]:
        """pid -> an absolute signed ``/html`` URL of its message."""
        params: dict[str, Any] = {"remote": int(remote)}
        if theme:
            params["theme"] = theme
        urls = {}
        with self.client() as client:
            for pid in pids:
                response = client.get(f"/api/messages/{self.ids[pid]}/html-url", params=params)
                assert response.status_code == 200, response.text
                urls[pid] = self.settings.http_url + response.json()["url"]
        return urls


def new_run() -> str:
    return uuid.uuid4().hex[:10]


def all_mails(corpus: Corpus, to: str, *, per_payload: bool = True) -> dict[str, bytes]:
    mails = corpus.payload_mails(to) if per_payload else {}
    return {
        **mails,
        **corpus.category_mails(to),
        **corpus.header_mails_for(to),
        **corpus.cid_mails(to),
    }


def send_all(settings: Settings, to: str, mails: Iterable[bytes]) -> None:
    """Every mail over one SMTP connection."""
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, local_hostname="hostile.test", timeout=60
    ) as smtp:
        for data in mails:
            assert not smtp.sendmail("corpus@hostile.test", [to], data)


def wait_for_ids(
    client: httpx.Client, run: str, pids: Iterable[str], timeout_s: float = 60
) -> dict[str, str]:
    """pid -> message id, once the mail of every pid is listed in the mailbox."""
    wanted = {message_id(pid, run): pid for pid in pids}
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[str, str] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            listing = client.get("/api/messages", params=params).json()
            for message in listing["messages"]:
                if (pid := wanted.get(message["message_id_header"])) is not None:
                    found[pid] = message["id"]
            if not (cursor := listing["next_cursor"]):
                break
        if len(found) == len(wanted):
            return found
        missing = sorted(set(wanted.values()) - set(found))
        assert time.monotonic() < deadline, f"not stored within {timeout_s}s: {missing}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def delivered(stack_switch: StackSwitch, counting_server: CountingServer) -> Delivered:
    """Every mail of the corpus sent over SMTP to a new mailbox, and stored."""
    settings = stack_switch.up("sqlite")
    corpus = Corpus(Urls(counting_server.base, settings.http_url, new_run()))
    with httpx.Client(base_url=settings.http_url, timeout=30) as client:
        created = client.post("/api/mailboxes")
        assert created.status_code == 201, created.text
    box = Delivered(
        settings, counting_server, corpus, created.json()["token"], created.json()["address"]
    )
    mails = all_mails(corpus, box.address)
    send_all(settings, box.address, mails.values())
    with box.client() as client:
        box.ids = wait_for_ids(client, corpus.urls.run, mails)
    return box


# ------------------------------------------------------------------ watching


@dataclass
class Watch:
    """What a page did besides the fixture's ``PageLog``: response headers by URL and
    main-frame navigations."""

    responses: dict[str, dict[str, str]] = field(default_factory=dict)
    navigations: list[str] = field(default_factory=list)


def watch(page: Any) -> Watch:
    seen = Watch()
    page.on("response", lambda r: seen.responses.__setitem__(r.url, r.headers))
    page.on(
        "framenavigated",
        lambda frame: seen.navigations.append(frame.url) if frame == page.main_frame else None,
    )
    return seen


#: In the top page only: keep every message posted to it.
RECORD_MESSAGES_JS = """
if (window === window.top) {
  window.__hostileMessages = [];
  window.addEventListener('message', (event) => {
    window.__hostileMessages.push(String(event.data).slice(0, 200));
  });
}
"""


def describe(hits: Iterable[Hit]) -> list[str]:
    return sorted({f"{h.kind}:{h.pid or h.path}" for h in hits})


def quiet() -> None:
    """Give a payload the time to do what it would (a fetch, an image error, a timer)."""
    time.sleep(QUIET_S)


def inspect_frame(frame: Any, own: str, *, allow_remote: bool = False) -> dict[str, Any]:
    """:data:`INSPECT_JS` in ``frame``; ``own`` is the stack's origin (signed inline
    images come from there)."""
    result: dict[str, Any] = frame.evaluate(INSPECT_JS, [DOCUMENT_TAGS, allow_remote, own])
    return result


def trigger_frame(frame: Any, triggers: list[str], *, web_links: bool) -> None:
    try:
        frame.evaluate(TRIGGER_JS, [triggers, web_links])
    except Exception as exc:  # a click navigated the (unsanitised) frame mid-call
        if "destroyed" not in str(exc) and "detached" not in str(exc):
            raise


def user_input(page: Any) -> None:
    """A reader's mouse across the page and two Tab presses (real input events, beside
    the synthetic ones of :data:`TRIGGER_JS`)."""
    page.mouse.move(5, 5)
    page.mouse.move(1200, 850, steps=5)
    for _ in range(2):
        page.keyboard.press("Tab")


def frame_grid(urls: dict[str, str], *, sandbox: str | None) -> str:
    """A page of one small iframe per URL, named ``f-<pid>``."""
    attribute = f' sandbox="{sandbox}"' if sandbox is not None else ""
    frames = "".join(
        f'<iframe name="f-{pid}" src="{url}"{attribute} width="150" height="90"></iframe>'
        for pid, url in urls.items()
    )
    return (
        "<!doctype html><html><head><title>hostile parent</title>"
        f"<script>{RECORD_MESSAGES_JS}</script></head><body>{frames}</body></html>"
    )


def open_grid(page: Any, url: str, frames: dict[str, str], *, sandbox: str | None) -> None:
    """Serve :func:`frame_grid` at ``url`` (a route: nothing reaches the stack) and load it."""
    body = frame_grid(frames, sandbox=sandbox)
    page.route(url, lambda route: route.fulfill(body=body, content_type="text/html"))
    page.goto(url, timeout=GRID_TIMEOUT_MS)


def frames_by_pid(page: Any) -> dict[str, Any]:
    return {
        f.name[2:]: f
        for f in page.frames
        if f.parent_frame == page.main_frame and f.name.startswith("f-")
    }


def document_problems(pid: str, found: dict[str, Any], *, name: str = "") -> list[str]:
    """What :data:`INSPECT_JS` found wrong with one sanitised document."""
    problems = [f"{pid}: {finding}" for finding in found["findings"]]
    if found["origin"] != "null":
        problems.append(f"{pid}: runs in origin {found['origin']}, not an opaque one")
    if found["name"] != name:
        problems.append(f"{pid}: window.name is {found['name']!r}")
    return problems


def header_problems(pid: str, headers: dict[str, str]) -> list[str]:
    problems = [f"{pid}: CSP {p}" for p in csp_problems(headers.get("content-security-policy"))]
    if headers.get("x-content-type-options") != "nosniff":
        problems.append(f"{pid}: no X-Content-Type-Options: nosniff")
    if not headers.get("content-type", "").startswith("text/html"):
        problems.append(f"{pid}: served as {headers.get('content-type')}")
    return problems


def assert_nothing_happened(
    server: CountingServer, run: str, since: int, log: Any, messages: Iterable[str] = ()
) -> None:
    """No request of ``run`` since ``since``, to the counting server or our origin; no
    dialog, no uncaught error, no message posted to the top, no blocked script."""
    hits = server.hits(run, since)
    assert not hits, f"requests to the counting server: {describe(hits)}"
    own = own_origin_pids(log.requests, run)
    assert not own, f"requests to the stack's own origin: {sorted(own)}"
    assert not log.dialogs, f"dialogs: {log.dialogs}"
    assert not log.errors, f"page errors: {log.errors}"
    assert not list(messages), f"messages posted to the top: {list(messages)}"
    blocked = [line for line in log.console if "script" in line.lower()]
    assert not blocked, f"a script reached a document (and was blocked): {blocked}"


# --------------------------------------------------------- 1. the detector


def test_detector_sees_unsanitised_payloads(
    open_page: OpenPage, counting_server: CountingServer, base_url: str
) -> None:
    """Each payload, unsanitised in a plain page, does in Chromium what the corpus says,
    and each channel reports: so a payload the sanitiser let through would be seen, and
    no payload is one that proves nothing."""
    run = "ctl-" + new_run()
    urls = Urls(counting_server.base, base_url, run)
    docs = {
        p.pid: counting_server.put_page(f"/_pages/{run}/{p.pid}", payload_document(p, urls))
        for p in PAYLOADS
    }
    control = counting_server.put_page(f"/_pages/{run}/control", frame_grid(docs, sandbox=None))
    page, log = open_page()
    page.goto(control)
    frames = frames_by_pid(page)
    assert set(frames) == set(docs)
    for pid in ("s01-plain", "h01-img-onerror", "j01-href", "v01-script", "c05-url-attr"):
        assert inspect_frame(frames[pid], base_url)["findings"], f"the inspector missed {pid}"
    for payload in PAYLOADS:
        if payload.trigger:
            trigger_frame(frames[payload.pid], [payload.trigger], web_links=True)
    quiet()
    messages = page.evaluate("window.__hostileMessages")
    hits = counting_server.hits(run)
    ran = {h.pid for h in hits if h.kind == RAN} | set(log.dialogs) | set(messages)
    loaded = {h.pid for h in hits if h.kind in {REMOTE_OK, NEVER}}
    loaded |= own_origin_pids(log.requests, run)
    wrong = []
    for p in PAYLOADS:
        if p.fires is not None and (p.pid in ran) != p.fires:
            wrong.append(f"{p.pid}: runs={p.pid in ran}, the corpus says {p.fires}")
        if p.loads is not None and (p.pid in loaded) != p.loads:
            wrong.append(f"{p.pid}: loads={p.pid in loaded}, the corpus says {p.loads}")
    assert not wrong, "\n".join(wrong)
    # Each channel on its own: requests, dialogs, messages, the top's title, our origin.
    assert {h.pid for h in hits if h.kind == RAN} and log.dialogs and messages
    assert page.title() != "hostile parent"
    assert own_origin_pids(log.requests, run)


def test_literal_text_check_catches_markup(open_page: OpenPage) -> None:
    """:func:`literal_problems` fails a field filled with innerHTML, passes textContent."""
    page, _log = open_page()
    page.set_content("<div id=good></div><div id=bad></div>")
    value = '<img src=x onerror="1"><b data-hostile=1>x</b> \u202etxt'
    page.eval_on_selector("#good", "(el, v) => { el.textContent = v; }", value)
    page.eval_on_selector("#bad", "(el, v) => { el.innerHTML = v; }", value)
    assert literal_problems(page.locator("#good"), value) == []
    assert literal_problems(page.locator("#bad"), value)


# ---------------------------------------------------- 2. the served documents


def test_sanitised_documents_top_level(
    open_page: OpenPage, delivered: Delivered, base_url: str
) -> None:
    """Every payload (the category mails), the header mails and the ``cid:`` mail, their
    signed ``/html`` URLs opened as the top document, where only the response's CSP
    sandboxes them; the CSS and ``cid:`` ones in both reader themes too."""
    pids = [*delivered.corpus.category_pids, *(h.pid for h in HEADER_MAILS), CID_PID]
    targets = list(delivered.signed_urls(pids).items())
    for theme in ("light", "dark"):
        targets += delivered.signed_urls(["cat-css", CID_PID], theme=theme).items()
    page, log = open_page()
    seen = watch(page)
    since = delivered.server.mark()
    problems: list[str] = []
    for pid, url in targets:
        response = page.goto(url)
        assert response is not None and response.status == 200, pid
        problems += header_problems(pid, response.headers)
        trigger_frame(page.main_frame, ALL_TRIGGERS, web_links=False)
        user_input(page)
        problems += document_problems(pid, inspect_frame(page.main_frame, base_url))
        if page.url != url:
            problems.append(f"{pid}: navigated to {page.url}")
    quiet()
    assert not problems, "\n".join(problems)
    assert_nothing_happened(delivered.server, delivered.run, since, log)
    opened = {url for _pid, url in targets}
    assert set(seen.navigations) <= opened, f"navigated by itself: {seen.navigations}"


def test_sanitised_documents_in_sandboxed_frames(
    open_page: OpenPage, delivered: Delivered, base_url: str
) -> None:
    """Every payload in a mail of its own, in the contract's ``<iframe sandbox>``, all
    in one page on the stack's origin (the mails of several payloads are opened top-level
    above, and in the page below)."""
    urls = delivered.signed_urls(p.pid for p in PAYLOADS)
    parent = f"{base_url}/hostile-frames-{delivered.run}"
    page, log = open_page()
    seen = watch(page)
    since = delivered.server.mark()
    open_grid(page, parent, urls, sandbox=FRAME_SANDBOX)
    frames = frames_by_pid(page)
    assert set(frames) == set(urls)
    user_input(page)
    problems: list[str] = []
    for pid, frame in frames.items():
        problems += document_problems(pid, inspect_frame(frame, base_url), name=f"f-{pid}")
        if frame.url != urls[pid]:
            problems.append(f"{pid}: the frame navigated to {frame.url}")
        problems += header_problems(pid, seen.responses.get(urls[pid], {}))
    quiet()
    assert not problems, "\n".join(problems)
    messages = page.evaluate("window.__hostileMessages")
    assert_nothing_happened(delivered.server, delivered.run, since, log, messages)
    assert page.title() == "hostile parent"
    assert page.url == parent and seen.navigations == [parent]


def test_remote_content_allowed_loads_images_but_runs_nothing(
    open_page: OpenPage, delivered: Delivered, base_url: str
) -> None:
    """With ``remote=1`` remote images (and fonts) may load from the counting server;
    still no script runs, and no document, frame, style sheet, or form target loads."""
    pids = [*delivered.corpus.category_pids, CID_PID]
    urls = delivered.signed_urls(pids, remote=True)
    parent = f"{base_url}/hostile-remote-{delivered.run}"
    page, log = open_page()
    seen = watch(page)
    since = delivered.server.mark()
    open_grid(page, parent, urls, sandbox=FRAME_SANDBOX)
    problems: list[str] = []
    for pid, frame in frames_by_pid(page).items():
        trigger_frame(frame, ALL_TRIGGERS, web_links=False)
        found = inspect_frame(frame, base_url, allow_remote=True)
        problems += document_problems(pid, found, name=f"f-{pid}")
        problems += header_problems(pid, seen.responses.get(urls[pid], {}))
    quiet()
    assert not problems, "\n".join(problems)
    hits = delivered.server.hits(delivered.run, since)
    bad = [h for h in hits if h.kind in {RAN, NEVER}]
    assert not bad, f"with remote content allowed, still never: {describe(bad)}"
    loaded = {h.pid for h in hits if h.kind == REMOTE_OK}
    assert {"r01-tracking-pixel", "c05-url-attr"} <= loaded, describe(hits)
    # An image on our origin is a remote image like any other; nothing else may load.
    assert own_origin_pids(log.requests, delivered.run) <= {"r09-own-origin"}
    assert not log.dialogs and not log.errors
    assert page.title() == "hostile parent"
    assert not page.evaluate("window.__hostileMessages")


# ------------------------------------------------ 3. attachments and raw bytes


def test_attachments_and_raw_are_downloads(
    open_page: OpenPage, delivered: Delivered, base_url: str
) -> None:
    """Every attachment of the header mails (HTML, SVG, an "image/png" that is HTML,
    bidi-spoofed and path-like names) and their raw bytes: downloads with ``nosniff``
    and a sandbox CSP, never a document on our origin, whether opened top-level or in a
    plain (unsandboxed) frame of our origin."""
    targets: dict[str, str] = {}
    problems: list[str] = []
    with delivered.client() as client:
        for case in HEADER_MAILS:
            mid = delivered.ids[case.pid]
            message = client.get(f"/api/messages/{mid}").json()
            # What the page must show literally is markup indeed, once decoded.
            assert case.subject_has in message["subject"], message["subject"]
            assert case.from_has in message["from"][0]["name"], message["from"]
            assert len(message["attachments"]) == len(case.attachments)
            for n, attachment in enumerate(message["attachments"]):
                targets[f"{case.pid}-a{n}"] = f"/api/messages/{mid}/attachments/{attachment['id']}"
            targets[f"{case.pid}-raw"] = f"/api/messages/{mid}/raw"
        for name, path in targets.items():
            response = client.get(path)
            assert response.status_code == 200, (name, response.text)
            headers = response.headers
            if headers.get("content-type", "").startswith(RENDERABLE):
                problems.append(f"{name}: served as {headers['content-type']}")
            if not headers.get("content-disposition", "").startswith("attachment"):
                problems.append(f"{name}: Content-Disposition {headers.get('content-disposition')}")
            if headers.get("x-content-type-options") != "nosniff":
                problems.append(f"{name}: no nosniff")
            if "sandbox" not in headers.get("content-security-policy", ""):
                problems.append(f"{name}: CSP {headers.get('content-security-policy')}")
    page, log = open_page()
    page.context.add_cookies(
        [{"name": "tmpmail_token", "value": delivered.token, "url": base_url + "/api"}]
    )
    since = delivered.server.mark()
    for name, path in targets.items():
        with page.expect_download(timeout=15_000) as download:
            try:
                page.goto(base_url + path)
            except Exception as exc:  # Playwright: "Download is starting"
                if "Download is starting" not in str(exc):
                    raise
        saved = download.value.suggested_filename
        hidden = [hex(ord(c)) for c in saved if unicodedata.category(c) in {"Cc", "Cf"}]
        if hidden or "/" in saved or "\\" in saved:
            problems.append(f"{name}: saved as {saved!r} {hidden}")
    # The same URLs in plain frames of a page on our origin: still downloads.
    open_grid(
        page,
        f"{base_url}/hostile-attachments-{delivered.run}",
        {name: base_url + path for name, path in targets.items()},
        sandbox=None,
    )
    quiet()
    for name, frame in frames_by_pid(page).items():
        rendered = frame.evaluate(
            "document.querySelectorAll('script, svg, img, [onload], [onerror]').length"
        )
        if rendered:
            problems.append(f"{name}: rendered {rendered} elements in a frame of our origin")
    assert not problems, "\n".join(problems)
    messages = page.evaluate("window.__hostileMessages")
    assert_nothing_happened(delivered.server, delivered.run, since, log, messages)
    assert page.title() == "hostile parent"


# ------------------------------------------------------------ 4. the inbox page


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


#: ``(selectors, markup)`` -> for each selector, what its elements show: text, elements
#: that only the mail's markup could have made, event-handler attributes, and a few
#: attributes of the element itself.
FIELDS_JS = """([root, selectors, markup]) => {
  const scope = root ? document.querySelector(root) : document;
  const show = (el) => ({
    text: el.textContent,
    made: [...el.querySelectorAll(markup)].map((e) => e.outerHTML.slice(0, 80)),
    handlers: [...el.querySelectorAll('*')].flatMap((e) => [...e.attributes]
      .filter((a) => a.name.startsWith('on')).map((a) => a.name)),
    href: el.getAttribute('href'), src: el.getAttribute('src'),
    sandbox: el.getAttribute('sandbox'), name: el.getAttribute('name') || '',
    visible: !el.hidden && el.getClientRects().length > 0,
  });
  const out = {};
  for (const selector of selectors) out[selector] = [...scope.querySelectorAll(selector)].map(show);
  return out;
}"""


def shown_fields(page: Any, selectors: list[str], *, root: str = "") -> dict[str, list[Any]]:
    """:data:`FIELDS_JS` in the page, in one round trip."""
    fields: dict[str, list[Any]] = page.evaluate(FIELDS_JS, [root, selectors, MARKUP_MADE])
    return fields


def literal_text_problems(shown: dict[str, Any], expected: str, *, whole: bool = True) -> list[str]:
    """Why a field (one entry of :func:`shown_fields`) does not show ``expected`` as
    literal text: its text differs (or, ``whole=False``, does not contain it), or the
    markup in it became elements or event handlers."""
    problems = []
    text, want = _squash(shown["text"]), _squash(expected)
    if (text != want) if whole else (want not in text):
        problems.append(f"text {text[:100]!r} is not {want[:100]!r}")
    if shown["made"]:
        problems.append(f"markup became elements: {shown['made']}")
    if shown["handlers"]:
        problems.append(f"event handlers: {shown['handlers']}")
    return problems


def literal_problems(locator: Any, expected: str, *, whole: bool = True) -> list[str]:
    """:func:`literal_text_problems` of one element."""
    shown = locator.evaluate(
        "(el, markup) => ({text: el.textContent,"
        " made: [...el.querySelectorAll(markup)].map((e) => e.outerHTML.slice(0, 80)),"
        " handlers: [...el.querySelectorAll('*')].flatMap((e) => [...e.attributes]"
        ".filter((a) => a.name.startsWith('on')).map((a) => a.name))})",
        MARKUP_MADE,
    )
    return literal_text_problems(shown, expected, whole=whole)


#: The top page's state that no mail may change.
TOP_STATE_JS = """() => ({
    hostile: [...document.querySelectorAll('[data-hostile], [onerror], [onload]')]
        .map((e) => e.outerHTML.slice(0, 80)),
    handlers: [...document.querySelectorAll('*')].flatMap((e) => [...e.attributes]
        .filter((a) => a.name.startsWith('on')).map((a) => `${e.localName} ${a.name}`)),
    scripts: [...document.scripts].map((s) => s.src || `inline ${s.textContent.length}`),
    frames: document.querySelectorAll('iframe, frame, object, embed').length,
    name: window.name,
    path: location.origin + location.pathname,
})"""


def page_is_served(base_url: str) -> bool:
    response = httpx.get(base_url + "/", timeout=10)
    return response.status_code == 200 and "text/html" in response.headers.get("content-type", "")


def test_inbox_page_shows_hostile_mail_inert(
    open_page: OpenPage, web_stack: Settings, counting_server: CountingServer, base_url: str
) -> None:
    """The acceptance: the page's own mailbox gets every category, header and ``cid:``
    mail over SMTP; opening each by clicking it runs nothing, loads nothing, changes
    nothing of the page, and shows subject, names and file names as literal text. Then
    remote content is allowed on one mail: its images load, and still nothing runs."""
    if not page_is_served(base_url):
        pytest.skip("the web inbox page is not served at / yet")
    corpus = Corpus(Urls(counting_server.base, base_url, new_run()))
    run = corpus.urls.run
    page, log = open_page()
    page.add_init_script(RECORD_MESSAGES_JS)
    seen = watch(page)
    page.goto("/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    address_text = page.locator("[data-testid=address]").text_content() or ""
    address = re.search(r"[\w.+-]+@[\w.-]+\.\w+", address_text)
    assert address, address_text
    before = page.evaluate(TOP_STATE_JS)
    since = counting_server.mark()
    mails = all_mails(corpus, address.group(), per_payload=False)
    send_all(web_stack, address.group(), mails.values())
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=message-item]').length >= n",
        arg=len(mails),
        timeout=60_000,
    )
    items = page.locator("[data-testid=message-list] [data-testid=message-item]")
    problems: list[str] = []
    opened = set()
    for index in range(items.count()):
        item = items.nth(index)
        message = page.request.get(f"/api/messages/{item.get_attribute('data-id')}").json()
        pid = _pid_of(message.get("message_id_header", ""), run)
        if pid is not None:
            problems += _check_message(page, item, message, pid, base_url)
            opened.add(pid)
    assert opened == set(mails)
    user_input(page)
    quiet()
    assert not problems, "\n".join(problems)
    assert_nothing_happened(
        counting_server, run, since, log, page.evaluate("window.__hostileMessages")
    )
    after = page.evaluate(TOP_STATE_JS)
    assert after["hostile"] == [] and after["handlers"] == [], after
    assert after["scripts"] == before["scripts"], (before, after)
    assert after["frames"] <= 1, after  # the one message frame
    assert (after["name"], after["path"]) == (before["name"], before["path"])
    title = page.title()
    assert not any(pid in title for pid in mails) and "<" not in title, title
    assert [n for n in seen.navigations if "/api/" in n] == [], seen.navigations
    _check_text_and_source(page, items, run)
    _check_remote_allowed(page, items, counting_server, run, since, log)


def _pid_of(message_id_header: str, run: str) -> str | None:
    match = re.fullmatch(rf"<(.+)\.{re.escape(run)}@hostile\.test>", message_id_header)
    return match.group(1) if match else None


ITEM_FIELDS = ["[data-testid=item-subject]", "[data-testid=item-from]"]
VIEW_FIELDS = [
    "[data-testid=message-subject]",
    "[data-testid=message-from]",
    "[data-testid=message-to]",
    "[data-testid=message-text]",
    "[data-testid=attachment]",
    "[data-testid=remote-bar]",
    "iframe[data-testid=message-html]",
]


def _check_message(
    page: Any, item: Any, message: dict[str, Any], pid: str, base_url: str
) -> list[str]:
    """Open one message by clicking its list item; what is wrong with how it shows."""
    problems: list[str] = []

    def literal(where: str, shown: list[Any], expected: str, *, whole: bool = True) -> None:
        if len(shown) != 1:
            problems.append(f"{pid} {where}: {len(shown)} elements")
        for entry in shown:
            problems.extend(
                f"{pid} {where}: {p}" for p in literal_text_problems(entry, expected, whole=whole)
            )

    subject = message["subject"]
    root = f"[data-testid=message-item][data-id='{message['id']}']"
    listed = shown_fields(page, ITEM_FIELDS, root=root)
    literal("item-subject", listed[ITEM_FIELDS[0]], subject)
    sender = message["from_name"] or message["from_address"]
    literal("item-from", listed[ITEM_FIELDS[1]], sender, whole=False)
    item.click()
    page.wait_for_function(
        """([subject, id, html]) => {
            const el = document.querySelector('[data-testid=message-subject]');
            const frame = document.querySelector('iframe[data-testid=message-html]');
            const shown = el && el.textContent.replace(/\\s+/g, ' ').trim() === subject;
            return shown && (!html || (frame?.getAttribute('src') || '').includes(`/${id}/html?`));
        }""",
        arg=[_squash(subject), message["id"], message["has_html"]],
        timeout=15_000,
    )
    view = shown_fields(page, VIEW_FIELDS)
    subject_el, from_el, to_el, text_el, links, bar, frames = (view[s] for s in VIEW_FIELDS)
    literal("message-subject", subject_el, subject)
    for entry in message["from"]:
        literal("message-from", from_el, entry["name"] or entry["address"], whole=False)
    for entry in message["to"]:
        literal("message-to", to_el, entry["name"] or entry["address"], whole=False)
    first_line = next(iter(message["text"].strip().splitlines()), "")
    if text_el and first_line:
        literal("message-text", text_el, first_line, whole=False)
    attachments = [a for a in message["attachments"] if not a["inline"]]
    if len(links) != len(attachments):
        problems.append(f"{pid}: {len(links)} attachment links for {len(attachments)}")
    for link, attachment in zip(links, attachments, strict=False):
        literal("attachment", [link], attachment["filename"], whole=False)
        if f"/attachments/{attachment['id']}" not in (link["href"] or ""):
            problems.append(f"{pid}: attachment link {link['href']}")
    if message["remote_resources"]:
        shown_bar = bar[0] if bar else None
        held_back = str(message["remote_resources"])
        if not shown_bar or not shown_bar["visible"] or held_back not in shown_bar["text"]:
            problems.append(f"{pid}: remote bar {shown_bar}, held back: {held_back}")
    if message["has_html"]:
        problems += _check_frame(page, frames, message["id"], pid, base_url)
    return problems


def _check_frame(
    page: Any, frames: list[Any], message_id: str, pid: str, base_url: str
) -> list[str]:
    """The message frame: the contract's sandbox, a signed URL with remote content off,
    an inert document in an opaque origin."""
    if len(frames) != 1:
        return [f"{pid}: {len(frames)} message frames"]
    problems = []
    shown = frames[0]
    if sorted((shown["sandbox"] or "").split()) != sorted(FRAME_SANDBOX.split()):
        problems.append(f"{pid}: iframe sandbox {shown['sandbox']!r}")
    if "sig=" not in (shown["src"] or "") or "remote=1" in (shown["src"] or ""):
        problems.append(f"{pid}: iframe src {shown['src']}")
    frame = page.locator("iframe[data-testid=message-html]").element_handle().content_frame()
    frame.wait_for_url(re.compile(rf"/api/messages/{re.escape(message_id)}/html\?"))
    trigger_frame(frame, ALL_TRIGGERS, web_links=False)
    found = inspect_frame(frame, base_url)
    return problems + document_problems(pid, found, name=shown["name"])


def _check_text_and_source(page: Any, items: Any, run: str) -> None:
    """The first header mail as text and as its source (when the page offers them): its
    markup stays text there too; links are the page's own, to http(s) only."""
    items.filter(has_text="Boss").first.click()
    page.locator("[data-testid=message-subject]").filter(has_text="invoice").wait_for()
    problems = []
    text_button = page.locator("#show-text")
    if text_button.count():
        text_button.click()
        text_view = page.locator("[data-testid=message-text]")
        text_view.wait_for()
        problems += literal_problems(text_view, "<script>fetch(`http://", whole=False)
        hrefs = text_view.evaluate("el => [...el.querySelectorAll('a')].map((a) => a.href)")
        problems += [f"text link {h}" for h in hrefs if not h.startswith(("http:", "https:"))]
        page.locator("#show-html").click()
    raw_button = page.locator("[data-testid=view-raw]")
    if raw_button.count():
        raw_button.click()
        source = page.locator("[data-testid=raw-source]")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=raw-source]')"
            "?.textContent.includes('Message-ID')"
        )
        problems += literal_problems(source, 'Subject: Re: <img src=x onerror="fetch(', whole=False)
        raw_button.click()
    assert not problems, problems


def _check_remote_allowed(
    page: Any, items: Any, server: CountingServer, run: str, since: int, log: Any
) -> None:
    """Remote content allowed on the remote-load mail: its images load; nothing runs."""
    target = items.filter(has_text="cat-remote-load")
    assert target.count() == 1, "the remote-load mail is not listed"
    target.click()
    page.locator("[data-testid=remote-bar]").wait_for(state="visible", timeout=15_000)
    page.locator("[data-testid=load-remote]").click()
    deadline = time.monotonic() + 15
    while "r01-tracking-pixel" not in {h.pid for h in server.hits(run, since)}:
        assert time.monotonic() < deadline, f"no remote image loaded: {describe(server.hits(run))}"
        time.sleep(0.1)
    src = page.locator("iframe[data-testid=message-html]").get_attribute("src") or ""
    assert "remote=1" in src, src
    frame = page.locator("iframe[data-testid=message-html]").element_handle().content_frame()
    trigger_frame(frame, ALL_TRIGGERS, web_links=False)
    quiet()
    bad = [h for h in server.hits(run, since) if h.kind in {RAN, NEVER}]
    assert not bad, describe(bad)
    assert not log.dialogs and not log.errors
    assert not page.evaluate("window.__hostileMessages")
