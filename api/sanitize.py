"""A stored mail's HTML made safe to serve, at serving time. Pure: no I/O.

The parser stores the HTML body as it came (``schemas.mail.ParsedMail.html``); the API
calls :func:`sanitize_html` when it serves it, so a fix here reaches mail already
stored. The result is a whole document, shown by the page in
``<iframe sandbox="allow-popups allow-popups-to-escape-sandbox">``, and the
Content-Security-Policy header to send with it. Layers, each enough on its own for
scripts:

1. nh3 (ammonia) with an allow-list of tags and attributes: no script, no event
   handler, no svg or math (the 2026 mXSS fixes in ammonia need either), no form,
   base, meta, iframe, object or embed; links only http, https and mailto.
2. Our own pass over every URL that loads something (img src and srcset, the
   ``background`` attribute, CSS ``url()`` in ``style`` attributes and ``<style>``
   blocks): ``cid:`` goes to the caller's :class:`InlineImage`, remote URLs are
   counted and kept only when ``allow_remote``. nh3 does not look inside ``<style>``
   nor into ``url()``, so ``<style>`` contents are taken out before nh3, rewritten
   with tinycss2 (no ``@import``, ``expression()``, ``behavior``, ``-moz-binding``,
   ``javascript:``) and put back into the head.
3. The CSP: no script-src under ``default-src 'none'``, a ``sandbox`` without
   ``allow-scripts`` or ``allow-same-origin``, and images only from ``data:`` and the
   signed-URL origins unless remote content is allowed.

Input is bounded: :data:`MAX_HTML_CHARS` of HTML and :data:`MAX_NESTING` levels of
(estimated) element nesting; beyond either the rest is dropped and
:attr:`SanitizedHtml.truncated` says so. Deep nesting is bounded because html5ever's
tree builder is quadratic in depth and, past some 100k levels, overflows the stack.
"""

from __future__ import annotations

import base64
import html as html_lib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import nh3
import tinycss2
from tinycss2 import ast as css_ast

#: HTML beyond this many characters is dropped (a 2 MiB body is already far beyond a
#: real mail's; it bounds nh3's and tinycss2's time per request).
MAX_HTML_CHARS = 2 * 1024 * 1024
#: Plain text beyond this many characters is dropped by :func:`linkify_text`.
MAX_TEXT_CHARS = 2 * 1024 * 1024
#: Deepest element nesting we hand to nh3; real mail stays well under 100.
MAX_NESTING = 512
#: Deepest nesting of CSS blocks (``@media`` in ``@supports`` ...) we keep.
MAX_CSS_DEPTH = 8

#: Image types a ``data:`` URL or an inline part may have (never SVG).
SAFE_IMAGE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/x-icon",
        "image/vnd.microsoft.icon",
    }
)

ALLOWED_TAGS = frozenset(
    {
        *("a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo"),
        *("big", "blockquote", "br", "caption", "center", "cite", "code", "col"),
        *("colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em"),
        *("figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5"),
        *("h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li", "main"),
        *("mark", "nav", "ol", "p", "pre", "q", "s", "samp", "section", "small"),
        *("span", "strike", "strong", "sub", "summary", "sup", "table", "tbody"),
        *("td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr"),
    }
)
#: Removed together with everything inside them (the rest of the not-allowed tags
#: are removed but keep their text).
DROPPED_WITH_CONTENT = frozenset(
    {
        *("script", "style", "svg", "math", "title", "template", "noscript"),
        *("iframe", "frame", "frameset", "noframes", "noembed", "object", "embed"),
        *("applet", "xmp", "plaintext", "textarea", "select", "button", "head"),
    }
)
_COMMON_ATTRIBUTES = frozenset(
    {"align", "valign", "bgcolor", "class", "dir", "id", "lang", "style", "title"}
)
_TABLE_ATTRIBUTES = frozenset(
    {"background", "border", "cellpadding", "cellspacing", "colspan", "rowspan"}
    | {"height", "nowrap", "width", "scope", "headers", "summary"}
)
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": _COMMON_ATTRIBUTES,
    "a": frozenset({"href", "name"}),
    "img": frozenset({"src", "srcset", "alt", "width", "height", "border", "hspace"})
    | frozenset({"vspace"}),
    "font": frozenset({"color", "face", "size"}),
    "table": _TABLE_ATTRIBUTES,
    "td": _TABLE_ATTRIBUTES,
    "th": _TABLE_ATTRIBUTES,
    "tr": frozenset({"background", "height"}),
    "tbody": frozenset({"background"}),
    "col": frozenset({"span", "width"}),
    "colgroup": frozenset({"span", "width"}),
    "ol": frozenset({"start", "type", "reversed"}),
    "ul": frozenset({"type"}),
    "li": frozenset({"value", "type"}),
    "hr": frozenset({"size", "width", "noshade", "color"}),
    "div": frozenset({"background"}),
    "details": frozenset({"open"}),
}
#: nh3's first gate on URL attributes; :func:`_filter_attribute` is the finer one.
_NH3_URL_SCHEMES = frozenset({"http", "https", "mailto", "cid", "data"})
LINK_SCHEMES = frozenset({"http", "https", "mailto"})

BASE_STYLE = (
    "html{-webkit-text-size-adjust:100%}"
    "body{margin:8px;overflow-wrap:break-word;word-wrap:break-word}"
    "img{max-width:100%;height:auto}"
    "table{max-width:100%}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere}"
)


@dataclass(frozen=True, slots=True)
class InlineImage:
    """An inline part a ``cid:`` reference points to: its bytes (served as a ``data:``
    URL) or a URL the caller made for it (a short-lived signed one, or a ``data:``
    URL). Exactly one of ``data`` and ``url``."""

    content_type: str
    data: bytes | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValueError("InlineImage takes exactly one of data and url")


@dataclass(frozen=True, slots=True)
class SanitizedHtml:
    """What to serve for one mail's HTML body."""

    #: The whole HTML document.
    document: str
    #: Remote resources the mail references (images, CSS ``url()``, ``@import``,
    #: srcset candidates, ``background`` attributes): held back when remote content
    #: is not allowed, counted the same either way.
    remote_blocked: int
    #: The Content-Security-Policy header value to send with :attr:`document`.
    csp: str
    #: The mail declares dark-mode support (``prefers-color-scheme``, ``color-scheme``).
    has_dark_mode: bool = False
    #: The input was cut at :data:`MAX_HTML_CHARS` or :data:`MAX_NESTING`.
    truncated: bool = False


@dataclass(slots=True)
class _Pass:
    """The state of one :func:`sanitize_html` call."""

    allow_remote: bool
    images: dict[str, str]
    remote: int = 0
    dark: bool = False
    #: The reader's theme (``light``/``dark``), when known: ``prefers-color-scheme``
    #: queries are decided by it instead of by the frame's environment.
    scheme: str | None = None


# --------------------------------------------------------------------------- API


def sanitize_html(
    html: str,
    *,
    allow_remote: bool,
    inline_images: Mapping[str, InlineImage],
    frame_ancestors: str = "'self'",
    color_scheme: str | None = None,
) -> SanitizedHtml:
    """``html`` (a mail's HTML body, untrusted) as a document safe to serve.

    ``inline_images`` maps content-ids (with or without ``<>``, any case) to their
    images; ``frame_ancestors`` is the CSP source list of who may frame the document
    (the app's origin, e.g. ``https://mail.example``; ``'self'`` by default).

    ``color_scheme`` (``"light"`` or ``"dark"``) is the reading page's theme, which a
    sandboxed frame cannot see (its ``prefers-color-scheme`` is the system's): the
    mail's ``prefers-color-scheme`` queries are decided by it, and the document is
    dark only when that is asked and the mail declares dark support; any other mail
    keeps its light canvas. ``None``: the document follows the system's preference.
    """
    truncated = len(html) > MAX_HTML_CHARS
    html = html[:MAX_HTML_CHARS]
    state = _Pass(allow_remote=allow_remote, images=_inline_sources(inline_images))
    state.dark = _declares_color_scheme(html)
    if color_scheme in ("light", "dark"):
        state.scheme = color_scheme
    body, stylesheets = _extract_styles(html)
    body, cut = _bound_nesting(body, MAX_NESTING)
    truncated = truncated or cut
    css = "".join(_sanitize_stylesheet(state, sheet) for sheet in stylesheets)
    cleaned = _cleaner(state).clean(body)
    document = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<style>{BASE_STYLE}</style>"
        + (f"<style>{css}</style>" if css else "")
        + _color_scheme_style(state)
        + f"</head><body>{cleaned}</body></html>"
    )
    csp = content_security_policy(
        allow_remote=allow_remote,
        image_origins=_origins(state.images.values()),
        frame_ancestors=frame_ancestors,
    )
    return SanitizedHtml(
        document=document,
        remote_blocked=state.remote,
        csp=csp,
        has_dark_mode=state.dark,
        truncated=truncated,
    )


def content_security_policy(
    *, allow_remote: bool, image_origins: Iterable[str] = (), frame_ancestors: str = "'self'"
) -> str:
    """The CSP for a served mail: nothing runs, nothing is framed or submitted, and
    images come from ``data:`` and ``image_origins`` (and the web if ``allow_remote``).
    """
    sources = ["data:", *sorted(o for o in set(image_origins) if _is_csp_origin(o))]
    if allow_remote:
        sources += ["https:", "http:"]
    images = " ".join(sources)
    if not _is_csp_source_list(frame_ancestors):
        frame_ancestors = "'self'"
    return "; ".join(
        [
            "default-src 'none'",
            f"img-src {images}",
            "style-src 'unsafe-inline'",
            f"font-src {images}",
            "base-uri 'none'",
            "form-action 'none'",
            f"frame-ancestors {frame_ancestors}",
            "sandbox allow-popups allow-popups-to-escape-sandbox",
        ]
    )


_LINK_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"'`\x00-\x1f\x7f]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*_~)]}>"
_PAIRS = {")": "(", "]": "[", "}": "{"}


def linkify_text(text: str) -> str:
    """A plain-text body as safe HTML: escaped, line breaks kept (``<pre>`` that
    wraps), http(s) and ``www.`` links made clickable in a new tab."""
    text = text[:MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    pos = 0
    for match in _LINK_RE.finditer(text):
        url = _trim_link(match.group())
        if url.lower() in {"http://", "https://", "www."} or "." not in url:
            continue
        out.append(html_lib.escape(text[pos : match.start()]))
        href = url if url.lower().startswith("http") else "https://" + url
        out.append(
            f'<a href="{html_lib.escape(href)}" target="_blank" '
            f'rel="noopener noreferrer">{html_lib.escape(url)}</a>'
        )
        pos = match.start() + len(url)
    out.append(html_lib.escape(text[pos:]))
    return (
        '<pre style="white-space:pre-wrap;overflow-wrap:anywhere;word-wrap:break-word">'
        + "".join(out)
        + "</pre>"
    )


def _trim_link(url: str) -> str:
    """``url`` without the punctuation that ends the sentence around it; a closing
    bracket stays when the URL opened it (``.../Foo_(bar)``)."""
    while url and url[-1] in _TRAILING:
        last = url[-1]
        if last in _PAIRS and url.count(_PAIRS[last]) >= url.count(last):
            break
        url = url[:-1]
    return url


# ------------------------------------------------------------------ URL policy

_SCHEME_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_URL_STRIP = "".join(chr(c) for c in range(0x21))
_DATA_IMAGE_RE = re.compile(r"data:([a-z0-9.+\-]+/[a-z0-9.+\-]+)[;,]", re.IGNORECASE)
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")


def _normalise_url(value: str) -> str:
    """``value`` as a browser reads it: no leading/trailing controls or spaces, no tab
    or newline anywhere (the WHATWG URL parser drops them)."""
    return value.strip(_URL_STRIP).translate(_TAB_NEWLINE)


def _scheme(url: str) -> str:
    match = _SCHEME_RE.match(url)
    return match.group(1).lower() if match else ""


def _is_safe_data_image(url: str) -> bool:
    match = _DATA_IMAGE_RE.match(url)
    return bool(match) and match is not None and match.group(1).lower() in SAFE_IMAGE_TYPES


def _content_id(value: str) -> str:
    return unquote(value).strip().strip("<>").strip().lower()


def _inline_sources(images: Mapping[str, InlineImage]) -> dict[str, str]:
    """Content-id (normalised) → the URL an ``img`` may load it from."""
    sources: dict[str, str] = {}
    for cid, image in images.items():
        if image.data is not None:
            content_type = image.content_type.split(";")[0].strip().lower()
            if content_type not in SAFE_IMAGE_TYPES:
                continue
            encoded = base64.b64encode(image.data).decode("ascii")
            sources[_content_id(cid)] = f"data:{content_type};base64,{encoded}"
        elif image.url is not None:
            url = _normalise_url(image.url)
            if any(c.isspace() or c in "\"'<>\\" for c in url):
                continue
            if _scheme(url) in {"http", "https"} or _is_safe_data_image(url):
                sources[_content_id(cid)] = url
    return sources


def _origins(urls: Iterable[str]) -> set[str]:
    origins = set()
    for url in urls:
        if _scheme(url) in {"http", "https"}:
            parts = urlsplit(url)
            if parts.hostname:
                origins.add(f"{parts.scheme.lower()}://{parts.netloc.rsplit('@', 1)[-1]}")
    return origins


_CSP_ORIGIN_RE = re.compile(r"https?://[a-zA-Z0-9.\-]+(?::[0-9]{1,5})?")
_CSP_SOURCE_RE = re.compile(r"'self'|'none'|https?://[a-zA-Z0-9.\-*]+(?::[0-9]{1,5})?")


def _is_csp_origin(value: str) -> bool:
    return _CSP_ORIGIN_RE.fullmatch(value) is not None


def _is_csp_source_list(value: str) -> bool:
    parts = value.split()
    return bool(parts) and all(_CSP_SOURCE_RE.fullmatch(p) for p in parts)


def _image_url(state: _Pass, raw: str) -> str | None:
    """What an image reference may load, or None to drop it. Counts remote ones."""
    url = _normalise_url(raw)
    scheme = _scheme(url)
    if scheme == "cid":
        return state.images.get(_content_id(url[4:]))
    if scheme == "data":
        return url if _is_safe_data_image(url) else None
    if scheme in {"http", "https"}:
        state.remote += 1
        return url if state.allow_remote else None
    if url.startswith(("//", "\\\\", "/\\", "\\/")):
        state.remote += 1
        return "https:" + url.replace("\\", "/") if state.allow_remote else None
    return None  # relative (there is no base to resolve it against) or another scheme


def _link_url(raw: str) -> str | None:
    url = _normalise_url(raw)
    if url.startswith("#"):
        return url
    return url if _scheme(url) in LINK_SCHEMES else None


# ------------------------------------------------------------------ HTML pass


def _cleaner(state: _Pass) -> nh3.Cleaner:
    def filter_attribute(tag: str, name: str, value: str) -> str | None:
        return _filter_attribute(state, tag, name, value)

    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=filter_attribute,
        strip_comments=True,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes=_NH3_URL_SCHEMES,
        url_relative=lambda url: url if url.startswith("#") else None,
    )


def _filter_attribute(state: _Pass, tag: str, name: str, value: str) -> str | None:
    if name == "style":
        return _sanitize_declarations(state, value) or None
    if name == "href":
        return _link_url(value)
    if name == "src":
        return _image_url(state, value) if tag == "img" else None
    if name == "srcset":
        return _sanitize_srcset(state, value) or None
    if name == "background":
        return _image_url(state, value)
    return value


_SRCSET_DESCRIPTOR_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?[wxh]")
_HTML_SPACE = " \t\n\r\f"


def _split_srcset(value: str) -> list[tuple[str, str]]:
    """The (URL, descriptors) candidates of a ``srcset``, as the HTML spec splits them."""
    candidates = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i] in _HTML_SPACE or value[i] == ","):
            i += 1
        start = i
        while i < n and value[i] not in _HTML_SPACE:
            i += 1
        url = value[start:i]
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start, depth = i, 0
            while i < n and not (value[i] == "," and depth == 0):
                depth += {"(": 1, ")": -1 if depth else 0}.get(value[i], 0)
                i += 1
            descriptors = value[start:i]
            i += 1
        if url:
            candidates.append((url, descriptors))
    return candidates


def _sanitize_srcset(state: _Pass, value: str) -> str:
    kept = []
    for raw, descriptors in _split_srcset(value):
        url = _image_url(state, raw)
        if url is None:
            continue
        words = [w for w in descriptors.split() if _SRCSET_DESCRIPTOR_RE.fullmatch(w)]
        kept.append(" ".join([url, *words]))
    return ", ".join(kept)


_STYLE_OPEN_RE = re.compile(r"<style(?=[\s/>])", re.IGNORECASE)
_STYLE_CLOSE_RE = re.compile(r"</style", re.IGNORECASE)
_META_RE = re.compile(r"<meta(?=[\s/])([^<>]{0,1000})", re.IGNORECASE)
_COLOR_SCHEME_RE = re.compile(
    r"""name\s*=\s*["']?(?:color-scheme|supported-color-schemes)\b""", re.IGNORECASE
)


def _declares_color_scheme(html: str) -> bool:
    """A ``<meta name="color-scheme" content="... dark">`` (or the older name)."""
    for match in _META_RE.finditer(html):
        attrs = match.group(1)
        if _COLOR_SCHEME_RE.search(attrs) and "dark" in attrs.lower():
            return True
    return False


def _extract_styles(html: str) -> tuple[str, list[str]]:
    """``html`` without its ``<style>`` elements, and their contents.

    One forward scan. It may take for a style what a browser would not (one in a
    comment, say): harmless, since what it takes is rewritten as CSS, and what is left
    goes to nh3, which drops any ``<style>`` it still finds.
    """
    parts: list[str] = []
    sheets: list[str] = []
    pos = 0
    while (opening := _STYLE_OPEN_RE.search(html, pos)) is not None:
        end = _end_of_tag(html, opening.end())
        closing = _STYLE_CLOSE_RE.search(html, end)
        parts.append(html[pos : opening.start()])
        media = _media_attribute(html[opening.end() : end])
        if closing is None:
            sheets.append(_scoped(html[end:], media))
            pos = len(html)
            break
        sheets.append(_scoped(html[end : closing.start()], media))
        pos = _end_of_tag(html, closing.end())
    parts.append(html[pos:])
    return "".join(parts), sheets


_MEDIA_ATTR_RE = re.compile(
    r"""(?:^|[\s"'/])media\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE
)


def _media_attribute(attrs: str) -> str | None:
    """The ``media`` attribute of a ``<style>`` tag (its attributes' text), if any."""
    found = _MEDIA_ATTR_RE.search(attrs)
    if found is None:
        return None
    value = next(g for g in found.groups() if g is not None)
    return html_lib.unescape(value).strip() or None


def _scoped(sheet: str, media: str | None) -> str:
    """A ``<style media=...>`` sheet as the ``@media`` rule it means, so that the media
    condition (``prefers-color-scheme: dark``, ``print``) survives: the sheet's own
    ``media`` attribute does not. The prelude goes through the same CSS pass as any."""
    if media is None or media.lower() == "all":
        return sheet
    return f"@media {media} {{\n{sheet}\n}}\n"


def _end_of_tag(html: str, pos: int) -> int:
    """The index after the ``>`` that ends the tag whose attributes start at ``pos``
    (quoted values may hold ``>``), or the end of ``html``."""
    quote = ""
    n = len(html)
    while pos < n:
        c = html[pos]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'" and html[pos - 1] in "= \t\n\r\f":
            quote = c
        elif c == ">":
            return pos + 1
        pos += 1
    return n


_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:\-]{0,63})")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"}
    | {"source", "track", "wbr", "param", "keygen", "frame", "basefont", "bgsound"}
    | {"image", "isindex"}
)
#: Elements a sibling of the same name closes without an end tag.
_SELF_CLOSING_SIBLINGS = frozenset(
    {"p", "li", "dt", "dd", "td", "th", "tr", "option", "optgroup", "thead", "tbody"}
    | {"tfoot", "rb", "rt", "rp", "rtc"}
)


def _bound_nesting(html: str, limit: int) -> tuple[str, bool]:
    """``html`` cut before the tag that would nest elements deeper than ``limit``
    (estimated from a scan of its tags), and whether it was cut.

    The estimate keeps a stack of open names: an end tag closes up to its name when it
    is open; a ``<p>``, ``<li>``, ``<td>``... closes an open one of its name when only
    such elements lie above it (never across a ``<table>`` or a ``<div>``, which the
    parser does not close either). Linear: each tag looks at most ``limit`` names down.
    """
    stack: list[str] = []
    for match in _TAG_RE.finditer(html):
        closing, name = match.group(1), match.group(2).lower()
        if closing:
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth] == name:
                    del stack[depth:]
                    break
        elif name not in _VOID:
            if name in _SELF_CLOSING_SIBLINGS:
                _close_siblings(stack, name)
            if len(stack) >= limit:
                return html[: match.start()], True
            stack.append(name)
    return html, False


def _close_siblings(stack: list[str], name: str) -> None:
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth] == name:
            del stack[depth:]
            return
        if stack[depth] not in _SELF_CLOSING_SIBLINGS:
            return


# ------------------------------------------------------------------- CSS pass

_DANGEROUS_NAMES = ("behavior", "binding", "expression")
_DANGEROUS_VALUES = ("javascript:", "vbscript:", "livescript:", "expression(", "behavior")
#: Functions whose string arguments are URLs.
_URL_STRING_FUNCTIONS = frozenset({"url", "src", "image", "image-set", "cross-fade"})
#: The only other functions an image function's arguments may hold.
_IMAGE_ARGUMENT_FUNCTIONS = frozenset({"type"})
_VENDOR_PREFIX_RE = re.compile(r"^-[a-z]+-")
#: Tokens that would end or open a block where a value or a selector should be.
_STRUCTURE = frozenset({"{", "}", ";"})


def _is_safe_prelude(nodes: Iterable[css_ast.Node]) -> bool:
    """A selector (or at-rule prelude) that loads nothing and cannot end the rule."""
    for node in nodes:
        if isinstance(node, css_ast.URLToken | css_ast.CurlyBracketsBlock):
            return False
        if isinstance(node, css_ast.LiteralToken) and node.value in _STRUCTURE:
            return False
        if isinstance(node, css_ast.FunctionBlock):
            if _VENDOR_PREFIX_RE.sub("", node.lower_name) in _URL_STRING_FUNCTIONS:
                return False
            if "expression" in node.lower_name or not _is_safe_prelude(node.arguments):
                return False
        if isinstance(node, css_ast.ParenthesesBlock | css_ast.SquareBracketsBlock):
            if not _is_safe_prelude(node.content):
                return False
    return True


def _sanitize_stylesheet(state: _Pass, css: str) -> str:
    try:
        rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
        return _escape_css("".join(_sanitize_rules(state, rules, 0)))
    except RecursionError:  # absurdly nested blocks: drop the sheet
        return ""


def _sanitize_rules(state: _Pass, rules: Iterable[css_ast.Node], depth: int) -> list[str]:
    out: list[str] = []
    for rule in rules:
        if isinstance(rule, css_ast.QualifiedRule):
            if not _is_safe_prelude(rule.prelude):
                continue
            prelude = tinycss2.serialize(rule.prelude).strip()
            body = _sanitize_declaration_nodes(state, rule.content)
            if prelude:
                out.append(f"{prelude}{{{body}}}")
        elif isinstance(rule, css_ast.AtRule):
            out.extend(_sanitize_at_rule(state, rule, depth))
    return out


def _sanitize_at_rule(state: _Pass, rule: css_ast.AtRule, depth: int) -> list[str]:
    keyword = rule.lower_at_keyword
    prelude = tinycss2.serialize(rule.prelude).strip()
    if keyword == "import":
        state.remote += 1
        return []
    if rule.content is None or depth >= MAX_CSS_DEPTH or not _is_safe_prelude(rule.prelude):
        return []
    if keyword in {"media", "supports", "keyframes", "-webkit-keyframes"}:
        if keyword == "media" and "prefers-color-scheme" in prelude.lower():
            state.dark = True
            if state.scheme is not None:
                prelude = _decide_color_scheme(rule.prelude, state.scheme).strip()
        inner = tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True)
        return [f"@{keyword} {prelude}{{{''.join(_sanitize_rules(state, inner, depth + 1))}}}"]
    if keyword in {"font-face", "page"}:
        return [f"@{keyword} {prelude}{{{_sanitize_declaration_nodes(state, rule.content)}}}"]
    return []  # @namespace, @charset, @layer, @container, vendor rules...


#: Media features that always / never match, for a decided ``prefers-color-scheme``
#: (no ``<``: :func:`_escape_css` would escape it).
_ALWAYS, _NEVER = "(width >= 0)", "(0 > width)"


def _decide_color_scheme(nodes: Iterable[css_ast.Node], scheme: str) -> str:
    """A media query prelude with each ``(prefers-color-scheme: x)`` replaced by a
    feature that always matches when ``x`` is ``scheme`` and never otherwise."""
    out = []
    for node in nodes:
        if isinstance(node, css_ast.ParenthesesBlock):
            words = [
                n.lower_value if isinstance(n, css_ast.IdentToken) else tinycss2.serialize([n])
                for n in node.content
                if not isinstance(n, css_ast.WhitespaceToken | css_ast.Comment)
            ]
            if len(words) == 3 and words[0] == "prefers-color-scheme" and words[1] == ":":
                out.append(_ALWAYS if words[2] == scheme else _NEVER)
            else:
                out.append(f"({_decide_color_scheme(node.content, scheme)})")
        else:
            out.append(tinycss2.serialize([node]))
    return "".join(out)


def _color_scheme_style(state: _Pass) -> str:
    """The document's forced ``color-scheme`` for a known reader theme: dark only for
    mail that declares dark support (its canvas and default text then follow)."""
    if state.scheme is None:
        return ""
    scheme = "dark" if state.scheme == "dark" and state.dark else "light"
    return f"<style>:root{{color-scheme:{scheme} !important}}</style>"


def _sanitize_declarations(state: _Pass, css: str) -> str:
    """The declarations of a ``style`` attribute, rewritten."""
    try:
        return _escape_css(
            _sanitize_declaration_nodes(state, tinycss2.parse_component_value_list(css))
        )
    except RecursionError:
        return ""


def _sanitize_declaration_nodes(state: _Pass, content: list[css_ast.Node] | None) -> str:
    kept = []
    for node in tinycss2.parse_blocks_contents(content or [], skip_comments=True):
        if isinstance(node, css_ast.Declaration):
            declaration = _sanitize_declaration(state, node)
            if declaration:
                kept.append(declaration)
    return ";".join(kept)


def _sanitize_declaration(state: _Pass, declaration: css_ast.Declaration) -> str | None:
    name = declaration.lower_name
    if any(word in name for word in _DANGEROUS_NAMES):
        return None
    values = _sanitize_values(state, declaration.value, url_strings=False)
    if values is None:
        return None
    value = tinycss2.serialize(values).strip()
    squeezed = re.sub(r"\s+", "", value).lower()
    if not value or any(word in squeezed for word in _DANGEROUS_VALUES):
        return None
    if name == "color-scheme" and "dark" in squeezed:
        state.dark = True
    important = " !important" if declaration.important else ""
    return f"{declaration.name}:{value}{important}"


def _sanitize_values(
    state: _Pass, nodes: list[css_ast.Node], *, url_strings: bool
) -> list[css_ast.Node] | None:
    """``nodes`` with every URL resolved or removed; None if the declaration must go."""
    out: list[css_ast.Node] = []
    for node in nodes:
        if isinstance(node, css_ast.URLToken):
            url = _image_url(state, node.value)
            if url is not None:
                out.append(_css_url(node, url))
        elif isinstance(node, css_ast.StringToken) and url_strings:
            url = _image_url(state, node.value)
            if url is not None:
                out.append(_css_url(node, url))
        elif isinstance(node, css_ast.FunctionBlock):
            function = node.lower_name
            if "expression" in function:
                return None
            is_url = _VENDOR_PREFIX_RE.sub("", function) in _URL_STRING_FUNCTIONS
            if url_strings and not is_url and function not in _IMAGE_ARGUMENT_FUNCTIONS:
                # var(), attr(), env()... in an image function hand it a URL this pass
                # never saw (``image-set(var(--u))``, ``--u: "https://..."``).
                return None
            arguments = _sanitize_values(state, node.arguments, url_strings=is_url)
            if arguments is None:
                return None
            if function in {"url", "src"}:
                out.extend(a for a in arguments if isinstance(a, css_ast.LiteralToken))
            else:
                out.append(
                    css_ast.FunctionBlock(
                        node.source_line, node.source_column, node.name, arguments
                    )
                )
        elif isinstance(node, css_ast.CurlyBracketsBlock) or (
            isinstance(node, css_ast.LiteralToken) and node.value in _STRUCTURE
        ):
            return None
        elif isinstance(node, css_ast.ParenthesesBlock | css_ast.SquareBracketsBlock):
            content = _sanitize_values(state, node.content, url_strings=False)
            if content is None:
                return None
            out.append(type(node)(node.source_line, node.source_column, content))
        elif isinstance(node, css_ast.WhitespaceToken):
            if not out or not isinstance(out[-1], css_ast.WhitespaceToken):
                out.append(node)  # one where a removed URL leaves two
        else:
            out.append(node)
    return out


def _css_url(node: css_ast.Node, url: str) -> css_ast.LiteralToken:
    escaped = "".join(
        c if c.isalnum() or c in "/:.;,=+-_?&%~@!$*#" else f"\\{ord(c):x} " for c in url
    )
    return css_ast.LiteralToken(node.source_line, node.source_column, f'url("{escaped}")')


def _escape_css(css: str) -> str:
    """``css`` safe between ``<style>`` and ``</style>``: no ``<`` at all (a CSS
    escape where it was, so strings keep their meaning)."""
    return css.replace("<", "\\3c ")
