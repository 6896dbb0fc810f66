"""What the hostile-mail tests need besides the browser: a counting HTTP server on
loopback, the corpus made into mails, and the scripts a test runs in a frame to see what
the browser made of a document.

* :class:`CountingServer` answers and records every request. A path
  ``/<run>/<kind>/<pid>/...`` is attributed to payload ``pid`` of run ``run``; ``kind``
  is ``ran`` (script ran), ``r`` (a remote image or font: allowed only with remote
  content), ``x`` (never allowed). ``r`` paths answer a 1x1 PNG, ``ran`` 204; pages put
  there with :meth:`CountingServer.put_page` are served as HTML; anything else is 404
  (so that ``<img src=x onerror=...>`` does fire in an unsanitised page).
* :class:`Urls` and :func:`render` fill a payload template's ``{{...}}`` tokens
  (:mod:`tests.web.hostile.payloads`); :func:`payload_mail`, :func:`category_mail` and
  :func:`header_mail` build the mails, each with a ``Message-ID`` that names its pid.
* :data:`INSPECT_JS` lists what in a frame's DOM could run, load or navigate;
  :data:`TRIGGER_JS` clicks, hovers and focuses what a payload waits for;
  :func:`csp_directives` parses a ``Content-Security-Policy``.
"""

from __future__ import annotations

import base64
import html
import re
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api import sanitize
from tests.web.hostile.payloads import HEADER_MAILS, PAYLOADS, HeaderMail, Payload

#: Where the stack's own origin is probed: ``<origin>/__hostile__/<run>/<pid>``.
OWN_PREFIX = "/__hostile__"
#: Kinds of counting-server path.
RAN, REMOTE_OK, NEVER = "ran", "r", "x"
MAIL_DOMAIN = "hostile.test"


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = _png_1x1()


def big_png(size: int) -> bytes:
    """A valid 1x1 PNG of about ``size`` bytes (a private ancillary chunk of noise that
    decoders skip): an inline image too large to embed, so it is linked by URL."""
    noise = bytes((n * 7919 + (n >> 8) * 104729) % 256 for n in range(size))
    body = b"hsTl" + noise
    chunk = struct.pack(">I", len(noise)) + body + struct.pack(">I", zlib.crc32(body))
    return PNG[:-12] + chunk + PNG[-12:]


# ------------------------------------------------------------------ the server


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the counting server received."""

    method: str
    path: str
    run: str = ""
    kind: str = ""
    pid: str = ""


def parse_hit(method: str, path: str) -> Hit:
    parts = path.split("?", 1)[0].split("/")
    if len(parts) >= 4 and parts[2] in {RAN, REMOTE_OK, NEVER}:
        return Hit(method, path, parts[1], parts[2], parts[3])
    return Hit(method, path)


class CountingServer:
    """An HTTP server on 127.0.0.1 that records every request (thread-safe)."""

    def __init__(self) -> None:
        self._hits: list[Hit] = []
        self._pages: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="counting-server", daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CountingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def put_page(self, path: str, document: str) -> str:
        """Serve ``document`` as HTML at ``path``; returns its URL."""
        with self._lock:
            self._pages[path] = document.encode()
        return self.base + path

    def mark(self) -> int:
        """A point in the record, for :meth:`hits` ``since``."""
        with self._lock:
            return len(self._hits)

    def hits(self, run: str | None = None, since: int = 0) -> list[Hit]:
        """Every request since ``since`` (of ``run``, when given), oldest first."""
        with self._lock:
            hits = self._hits[since:]
        return [h for h in hits if run is None or h.run == run]

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)

    def _page(self, path: str) -> bytes | None:
        with self._lock:
            return self._pages.get(path.split("?", 1)[0])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def send_error(
                self, code: int, message: str | None = None, explain: str | None = None
            ) -> None:
                # A request line we could not parse (a TLS hello, say) counts too.
                if not getattr(self, "_recorded", False):
                    server._record(Hit("?", f"<unparsable: {code}>", kind="bad"))
                    self._recorded = True
                super().send_error(code, message, explain)

            def _answer(self) -> None:
                self._recorded = True
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(min(length, 1 << 20))
                hit = parse_hit(self.command, self.path)
                server._record(hit)
                page = server._page(self.path)
                if page is not None:
                    self._send(200, "text/html; charset=utf-8", page)
                elif hit.kind == REMOTE_OK:
                    self._send(200, "image/png", PNG)
                elif hit.kind == RAN:
                    self._send(204, "text/plain", b"")
                else:
                    self._send(404, "text/plain", b"not here")

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = _answer

        return Handler


# ---------------------------------------------------------------- the corpus


@dataclass(frozen=True, slots=True)
class Urls:
    """The URLs of one run's payloads: the counting server's and the stack's own."""

    count_base: str
    own_base: str
    run: str

    def ran(self, pid: str) -> str:
        return f"{self.count_base}/{self.run}/{RAN}/{pid}"

    def remote(self, pid: str) -> str:
        return f"{self.count_base}/{self.run}/{REMOTE_OK}/{pid}"

    def never(self, pid: str) -> str:
        return f"{self.count_base}/{self.run}/{NEVER}/{pid}"

    def own_path(self, pid: str) -> str:
        return f"{OWN_PREFIX}/{self.run}/{pid}"

    def js(self, pid: str) -> str:
        """Script that reports it ran, every way a test watches (no quote, no space)."""
        ran = self.ran(pid)
        return (
            f"fetch(`{ran}`);(new(Image)).src=`{ran}/img`;"
            f"parent.postMessage(`{pid}`,`*`);window.name=`{pid}`;alert(`{pid}`);"
            f"top.document.title=`{pid}`;void(0)"
        )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def encoded_words(text: str) -> str:
    """``text`` as RFC 2047 ``B`` encoded words of UTF-8, each within 75 characters,
    separated by folding white space (which decoding drops between encoded words)."""
    words, chunk = [], b""
    for char in text:
        data = char.encode()
        if len(chunk) + len(data) > 45:
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return "\r\n ".join(f"=?UTF-8?B?{base64.b64encode(w).decode()}?=" for w in words)


_EW_RE = re.compile(r"\{\{EW:(.*?)\}\}", re.DOTALL)


def render(template: str, pid: str, urls: Urls) -> str:
    """``template`` with its tokens filled in for payload ``pid``."""
    js = urls.js(pid)
    remote = urls.remote(pid)
    tokens = {
        "{{JS}}": js,
        "{{RAN}}": urls.ran(pid),
        "{{R}}": remote,
        "{{R_NOSCHEME}}": remote.removeprefix("http:"),
        "{{R_UPPER}}": "HTTP://" + remote.removeprefix("http://"),
        "{{R_BACKSLASH}}": "http:" + remote.removeprefix("http:").replace("/", "\\"),
        "{{X}}": urls.never(pid),
        "{{OWN}}": urls.own_base + urls.own_path(pid),
        "{{OWNPATH}}": urls.own_path(pid),
        "{{PID}}": pid,
        "{{B64HTML}}": _b64(f"<script>{js}</script>"),
        "{{B64SVG}}": _b64(
            f'<svg xmlns="http://www.w3.org/2000/svg" onload="{js}"><script>{js}</script></svg>'
        ),
        "{{SRCDOC}}": html.escape(f"<script>{js}</script>"),
    }
    for token, value in tokens.items():
        template = template.replace(token, value)
    return _EW_RE.sub(lambda m: encoded_words(m.group(1)), template)


def payload_document(payload: Payload, urls: Urls) -> str:
    """One payload as a whole HTML document. Nothing follows it, so an unclosed
    construct (``<script>`` to the end) stays what it is."""
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>hostile {payload.pid}</title></head>"
        f"<body><p>payload {payload.pid}</p>\n{render(payload.html, payload.pid, urls)}"
    )


def message_id(pid: str, run: str) -> str:
    return f"<{pid}.{run}@{MAIL_DOMAIN}>"


def _as_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP)


def payload_mail(payload: Payload, to: str, urls: Urls) -> bytes:
    """One payload as the HTML body of a mail (text: its id)."""
    msg = EmailMessage()
    msg["From"] = f"Hostile corpus <corpus@{MAIL_DOMAIN}>"
    msg["To"] = to
    msg["Subject"] = f"hostile {payload.pid}"
    msg["Message-ID"] = message_id(payload.pid, urls.run)
    msg.set_content(f"hostile payload {payload.pid} ({payload.category})\n")
    msg.add_alternative(payload_document(payload, urls), subtype="html")
    return _as_bytes(msg)


def category_mail(category: str, payloads: Iterable[Payload], to: str, urls: Urls) -> bytes:
    """Every payload of ``category`` in one HTML body, for the page flow; the text part
    carries the first one's markup as text."""
    chosen = [p for p in payloads if p.category == category]
    pid = f"cat-{category}"
    parts = [
        f'<div class="payload"><p>payload {p.pid}</p>{render(p.html, p.pid, urls)}</div>'
        for p in chosen
    ]
    msg = EmailMessage()
    msg["From"] = f"Hostile corpus <corpus@{MAIL_DOMAIN}>"
    msg["To"] = to
    msg["Subject"] = f"hostile {pid}"
    msg["Message-ID"] = message_id(pid, urls.run)
    msg.set_content(f"{category}: {render(chosen[0].html, chosen[0].pid, urls)}\n")
    msg.add_alternative(
        '<!doctype html><html><head><meta charset="utf-8"></head><body>' + "\n<hr>\n".join(parts),
        subtype="html",
    )
    return _as_bytes(msg)


#: The ``cid:`` mail's HTML: embedded and linked inline images, parts that are not
#: images, and CSS that could smuggle a URL past the sanitiser's URL pass (``var()``
#: and ``attr()`` inside image functions). A linked image puts the stack's own origin
#: into the document's ``img-src``.
CID_PID = "cid-inline"
CID_HTML = """<!doctype html><html><head><style>
:root{--own:"{{OWN}}/var";--far:"{{R}}/var"}
.cv1{background-image:image-set(var(--own) 1x)}
.cv2{background-image:-webkit-image-set(var(--far) 1x)}
.cv3{background-image:image-set(attr(title) 1x)}
.cv4{list-style-image:image(var(--own))}
</style></head><body>
<p>inline images</p>
<img src="cid:small@hostile.test" alt="small" width=10 height=10>
<img src="cid:large@hostile.test" alt="large" width=10 height=10>
<img src="cid:svg@hostile.test" alt="svg"><img src="cid:fake@hostile.test" alt="fake">
<div style="background:url(cid:small@hostile.test)">css cid</div>
<div class=cv1>var own</div><div class=cv2>var far</div>
<div class=cv3 title="{{OWN}}/attr">attr</div><ul class=cv4><li>image()</li></ul>
<div style="background-image:image-set(var(--own) 1x)">inline var</div>
<img src=x onerror="{{JS}}">
</body></html>"""


def cid_mail(to: str, urls: Urls) -> bytes:
    """An HTML mail with ``multipart/related`` parts: a small PNG (embedded), a PNG over
    the embedding bound (linked by a signed URL on our origin), an SVG that runs script
    and an "image/png" that is HTML with script."""
    msg = EmailMessage()
    msg["From"] = f"Hostile corpus <corpus@{MAIL_DOMAIN}>"
    msg["To"] = to
    msg["Subject"] = f"hostile {CID_PID}"
    msg["Message-ID"] = message_id(CID_PID, urls.run)
    msg.set_content("inline images\n")
    msg.add_alternative(render(CID_HTML, CID_PID, urls), subtype="html")
    html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
    js = urls.js(CID_PID)
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{js}"><script>{js}</script></svg>'
    parts = [
        (PNG, "image", "png", "small"),
        (big_png(600 * 1024), "image", "png", "large"),
        (svg.encode(), "image", "svg+xml", "svg"),
        (f"<html><script>{js}</script></html>".encode(), "image", "png", "fake"),
    ]
    for data, maintype, subtype, name in parts:
        html_part.add_related(data, maintype, subtype, cid=f"<{name}@{MAIL_DOMAIN}>")
    return _as_bytes(msg)


def _header_value(value: str) -> str:
    """A header value for the wire: encoded words when it is not ASCII, folded (a
    value with encoded words of :func:`encoded_words` is folded already)."""
    if not value.isascii():
        return encoded_words(value)
    if "\r\n" in value:
        return value
    lines, line = [], ""
    for word in value.split(" "):
        if line and len(line) + 1 + len(word) > 76:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)


def header_mail(case: HeaderMail, to: str, urls: Urls) -> bytes:
    """A mail whose subject, From, To name and attachment names are ``case``'s, written
    to the wire as they are (the email library builds the rest)."""
    pid = case.pid
    subject = render(case.subject, pid, urls)
    from_ = render(case.from_, pid, urls)
    to_name = render(case.to_name, pid, urls)
    msg = EmailMessage()
    msg["From"] = f"placeholder-from@{MAIL_DOMAIN}"
    msg["To"] = f"placeholder-to@{MAIL_DOMAIN}"
    msg["Subject"] = "placeholder-subject"
    msg["Message-ID"] = message_id(pid, urls.run)
    msg.set_content(render(case.text, pid, urls) + "\n")
    msg.add_alternative(
        f"<p>header mail {pid}</p><p>{html.escape(render(case.text, pid, urls))}</p>",
        subtype="html",
    )
    for item in case.attachments:
        maintype, subtype = item.content_type.split("/")
        name = render(item.filename, pid, urls).replace("\r\n ", " ")
        msg.add_attachment(render(item.body, pid, urls).encode(), maintype, subtype, filename=name)
    data = _as_bytes(msg)
    if to_name.startswith("=?"):
        to_header = f"{to_name} <{to}>"
    elif to_name.isascii():
        to_header = f'"{to_name}" <{to}>'
    else:
        to_header = f"{encoded_words(to_name)} <{to}>"
    replacements = {
        b"Subject: placeholder-subject\r\n": f"Subject: {_header_value(subject)}\r\n",
        f"From: placeholder-from@{MAIL_DOMAIN}\r\n".encode(): f"From: {_header_value(from_)}\r\n",
        f"To: placeholder-to@{MAIL_DOMAIN}\r\n".encode(): f"To: {_header_value(to_header)}\r\n",
    }
    for placeholder, header in replacements.items():
        assert data.count(placeholder) == 1, placeholder
        data = data.replace(placeholder, header.encode("ascii"))
    return data


@dataclass(frozen=True, slots=True)
class Corpus:
    """Every mail of one run, by pid."""

    urls: Urls
    payloads: tuple[Payload, ...] = PAYLOADS
    header_mails: tuple[HeaderMail, ...] = HEADER_MAILS

    @property
    def categories(self) -> list[str]:
        return sorted({p.category for p in self.payloads})

    @property
    def category_pids(self) -> list[str]:
        return [f"cat-{c}" for c in self.categories]

    def payload_mails(self, to: str) -> dict[str, bytes]:
        return {p.pid: payload_mail(p, to, self.urls) for p in self.payloads}

    def category_mails(self, to: str) -> dict[str, bytes]:
        return {
            pid: category_mail(c, self.payloads, to, self.urls)
            for pid, c in zip(self.category_pids, self.categories, strict=True)
        }

    def header_mails_for(self, to: str) -> dict[str, bytes]:
        return {h.pid: header_mail(h, to, self.urls) for h in self.header_mails}

    def cid_mails(self, to: str) -> dict[str, bytes]:
        return {CID_PID: cid_mail(to, self.urls)}


# ------------------------------------------------------------- browser scripts

#: Elements a sanitised document may hold once Chromium has parsed it.
DOCUMENT_TAGS = sorted(sanitize.ALLOWED_TAGS | {"html", "head", "body", "meta", "style"})

#: Run in a frame: what in its DOM could run, load or navigate (``findings``), what it
#: requested (resource timing), and its name, origin and title. Images may be ``data:``
#: ones, signed inline-image URLs of our origin (``own``), and remote ones when allowed.
INSPECT_JS = r"""
([allowedTags, allowRemote, own]) => {
  const allowed = new Set(allowedTags);
  const XHTML = 'http://www.w3.org/1999/xhtml';
  const findings = [];
  const signed = new RegExp('^' + own.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    + '/api/messages/[0-9a-f]+/attachments/[^/?#]+\\?(.*&)?sig=');
  const imageOk = (raw) => {
    const url = raw.replace(/[\t\n\r]/g, '').trim().toLowerCase().replace(/\\/g, '/');
    if (/^data:image\/(png|jpeg|gif|webp|avif|bmp);/.test(url)) return true;
    if (signed.test(url)) return true;
    return allowRemote && /^https?:\/\//.test(url);
  };
  const linkOk = (raw) => {
    const url = raw.replace(/[\t\n\r]/g, '').trim().toLowerCase();
    return url.startsWith('#') || /^(https?|mailto):/.test(url);
  };
  const urlRe = /url\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^)\s]*))/g;
  const urlsIn = (value) => [...value.matchAll(urlRe)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
  const imageProperties = ['background-image', 'border-image-source', 'list-style-image',
    'mask-image', '-webkit-mask-image', 'mask-border-source', 'content', 'cursor',
    'shape-outside', 'filter', 'clip-path', 'src'];
  const banned = new Set(['action', 'formaction', 'srcdoc', 'xlink:href', 'data', 'poster',
    'ping', 'lowsrc', 'dynsrc', 'usemap', 'form', 'http-equiv', 'autofocus', 'contenteditable']);
  for (const el of document.querySelectorAll('*')) {
    const tag = el.localName;
    if (el.namespaceURI !== XHTML) findings.push(`foreign <${tag}> in ${el.namespaceURI}`);
    if (!allowed.has(tag)) findings.push(`<${tag}>`);
    if (tag === 'style' && el.parentElement && el.parentElement.localName !== 'head')
      findings.push('<style> outside <head>');
    if (tag === 'meta' && !(el.hasAttribute('charset') || el.getAttribute('name') === 'referrer'))
      findings.push(`<meta ${el.outerHTML}>`);
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const value = attr.value;
      if (name.startsWith('on')) findings.push(`<${tag} ${name}>`);
      if (banned.has(name)) findings.push(`<${tag} ${name}=${value.slice(0, 80)}>`);
      if (name === 'href' && !linkOk(value)) findings.push(`<${tag} href=${value.slice(0, 80)}>`);
      if ((name === 'src' || name === 'background') && !imageOk(value))
        findings.push(`<${tag} ${name}=${value.slice(0, 80)}>`);
      if (name === 'srcset')
        for (const part of value.split(','))
          if (part.trim() && !imageOk(part.trim().split(/\s+/)[0]))
            findings.push(`<${tag} srcset=${value.slice(0, 80)}>`);
      if (name === 'style' && /(expression|binding|behavior|javascript|vbscript)/i.test(value))
        findings.push(`<${tag} style=${value.slice(0, 80)}>`);
    }
    // What Chromium will load for it: every url() of its computed images.
    for (const pseudo of [null, '::before', '::after', '::marker']) {
      const style = getComputedStyle(el, pseudo);
      for (const property of imageProperties)
        for (const url of urlsIn(style.getPropertyValue(property)))
          if (!imageOk(url))
            findings.push(`<${tag}${pseudo || ''}> ${property}: ${url.slice(0, 80)}`);
    }
  }
  const walk = (rules, where) => {
    for (const rule of rules) {
      const kind = rule.constructor.name;
      if (kind === 'CSSImportRule' || kind === 'CSSNamespaceRule')
        findings.push(`${where}: ${rule.cssText.slice(0, 80)}`);
      if (rule.style)
        for (const url of urlsIn(rule.style.cssText))
          if (!imageOk(url)) findings.push(`${where}: ${kind} url(${url.slice(0, 80)})`);
      if (rule.cssRules) walk(rule.cssRules, where);
    }
  };
  for (const sheet of document.styleSheets) {
    if (sheet.href) findings.push(`style sheet ${sheet.href}`);
    try { walk(sheet.cssRules, 'sheet'); } catch (e) { findings.push(`unreadable sheet ${e}`); }
  }
  return {
    findings,
    resources: performance.getEntriesByType('resource').map((e) => e.name),
    name: window.name,
    origin: self.origin,
    title: document.title,
  };
}
"""

#: Run in a frame: set off what a payload waits for. ``webLinks`` false: leave links to
#: http(s) and mailto alone (in a sanitised document those are the mail's own links,
#: which open a new tab, not a vector).
TRIGGER_JS = r"""
([triggers, webLinks]) => {
  const all = [...document.querySelectorAll('*')];
  if (triggers.includes('focus'))
    for (const el of all) { try { el.focus(); } catch (e) {} }
  if (triggers.includes('hover'))
    for (const el of all) el.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
  if (triggers.includes('click')) {
    const selector = 'a, area, button, input, math, svg, [onclick]';
    for (const el of document.querySelectorAll(selector)) {
      const href = el.getAttribute('href') || '';
      if (!webLinks && /^\s*(https?|mailto):/i.test(href)) continue;
      el.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}));
    }
  }
  return all.length;
}
"""


def csp_directives(header: str) -> dict[str, list[str]]:
    """``default-src 'none'; img-src data:`` -> {"default-src": ["'none'"], ...}."""
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return directives


def csp_problems(header: str | None) -> list[str]:
    """What is wrong with the CSP of a served mail document, for a script-free frame."""
    if not header:
        return ["no Content-Security-Policy"]
    csp = csp_directives(header)
    problems = []
    if csp.get("default-src") != ["'none'"]:
        problems.append(f"default-src {csp.get('default-src')}")
    for directive in ("script-src", "script-src-elem", "script-src-attr", "worker-src"):
        if directive in csp:
            problems.append(f"{directive} present")
    sandbox = csp.get("sandbox")
    if sandbox is None:
        problems.append("no sandbox")
    elif {"allow-scripts", "allow-same-origin", "allow-top-navigation", "allow-forms"} & set(
        sandbox
    ):
        problems.append(f"sandbox {sandbox}")
    for directive in ("base-uri", "form-action"):
        if csp.get(directive) != ["'none'"]:
            problems.append(f"{directive} {csp.get(directive)}")
    if "frame-ancestors" not in csp:
        problems.append("no frame-ancestors")
    return problems


def own_origin_pids(request_urls: Iterable[str], run: str) -> set[str]:
    """The pids whose stack-origin probe (``/__hostile__/<run>/<pid>...``) was requested."""
    marker = f"{OWN_PREFIX}/{run}/"
    pids = set()
    for url in request_urls:
        _, found, rest = url.partition(marker)
        if found:
            pids.add(re.split(r"[/?#.]", rest, maxsplit=1)[0])
    return pids
