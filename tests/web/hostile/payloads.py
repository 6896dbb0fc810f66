"""Hostile HTML payloads, one a mail, and hostile headers, written for tmpmail's tests.

Each :class:`Payload` is a template. Its tokens, filled in per test run by
:func:`tests.web.hostile_support.render`:

* ``{{JS}}``: script that reports that it ran, every way we watch for: a ``fetch`` and
  an image of the counting server's ``/<run>/ran/<pid>``, ``parent.postMessage``,
  ``window.name``, ``alert`` and ``top.document.title``. No quote, no space: it fits
  quoted and unquoted attributes, ``javascript:`` and ``data:`` URLs.
* ``{{RAN}}``: the counting server's ``/<run>/ran/<pid>``, for payloads that build
  their own script.
* ``{{R}}``: a remote image (or font) URL on the counting server, ``/<run>/r/<pid>``:
  requested only when the reader allowed remote content; ``{{R_NOSCHEME}}``,
  ``{{R_UPPER}}``, ``{{R_BACKSLASH}}``: the same written ``//host/...``, ``HTTP://...``
  and with backslashes for slashes.
* ``{{X}}``: a counting-server URL that must never be requested, remote content or not
  (documents, frames, objects, scripts, style sheets, form targets): ``/<run>/x/<pid>``.
* ``{{OWN}}`` / ``{{OWNPATH}}``: a unique URL (absolute / root-relative) on the stack's
  own origin: ``/__hostile__/<run>/<pid>``, never requested.
* ``{{B64HTML}}``, ``{{B64SVG}}``: base64 of an HTML / SVG document that runs ``{{JS}}``;
  ``{{SRCDOC}}``: the HTML one escaped for an attribute; ``{{PID}}``: the payload's id.

``fires`` and ``loads`` say what the payload does in an unsanitised page of Chromium
(with ``trigger`` applied: a click, a hover, focus): the detector self-check of the
tests asserts exactly that, so a payload that would prove nothing (a typo, a vector
Chromium never had) is caught. ``None``: Chromium's behaviour is not asserted (it
depends on timing, focus or features outside a test's control).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Payload:
    pid: str
    category: str
    html: str
    #: Runs ``{{JS}}`` in an unsanitised page (after ``trigger``).
    fires: bool | None = False
    #: Requests one of its ``{{R}}``/``{{X}}`` URLs in an unsanitised page.
    loads: bool | None = False
    #: What the unsanitised control does to set it off: "" (nothing), "click" (click
    #: every link, area, button and submit), "hover" (mouse over everything), "focus".
    trigger: str = ""


def _p(
    pid: str,
    category: str,
    html: str,
    *,
    fires: bool | None = False,
    loads: bool | None = False,
    trigger: str = "",
) -> Payload:
    return Payload(pid, category, html, fires, loads, trigger)


SCRIPT = "script"
HANDLER = "handler"
JS_URL = "javascript-url"
DATA_URL = "data-url"
SVG = "svg"
MATHML = "mathml"
DOCUMENT = "meta-base-form"
CSS = "css"
REMOTE = "remote-load"
MXSS = "mxss"

PAYLOADS: tuple[Payload, ...] = (
    # ------------------------------------------------------------------ script tags
    _p("s01-plain", SCRIPT, "<script>{{JS}}</script>", fires=True),
    _p("s02-upper-type", SCRIPT, '<SCRIPT type="text/javascript">{{JS}}</SCRIPT>', fires=True),
    _p("s03-src", SCRIPT, '<script src="{{X}}/s.js"></script>', loads=True),
    _p("s04-nested", SCRIPT, "<div><p><b><i><script>{{JS}}</script></i></b></p></div>", fires=True),
    _p("s05-in-noscript", SCRIPT, "<noscript><script>{{JS}}</script></noscript>"),
    _p(
        "s06-noscript-escape",
        SCRIPT,
        '<noscript><p title="</noscript><script>{{JS}}</script>"></p></noscript>',
        fires=True,
    ),
    _p("s07-in-textarea", SCRIPT, "<textarea><script>{{JS}}</script></textarea>"),
    _p(
        "s08-textarea-escape",
        SCRIPT,
        '<textarea><p title="</textarea><img src=x onerror="{{JS}}">"></p></textarea>',
        fires=True,
    ),
    _p(
        "s09-title-escape",
        SCRIPT,
        '<title><p title="</title><script>{{JS}}</script>"></p></title>',
        fires=True,
    ),
    _p(
        "s10-style-escape",
        SCRIPT,
        '<style><p title="</style><script>{{JS}}</script>"></p></style>',
        fires=True,
    ),
    _p("s11-html-comment-inside", SCRIPT, "<script><!--\n{{JS}}\n//--></script>", fires=True),
    _p("s12-module", SCRIPT, "<script type=module>{{JS}}</script>", fires=True),
    _p("s13-split-name", SCRIPT, "<scr<script>ipt>{{JS}}</scr</script>ipt>"),
    # A script still open at the end of the input never runs (the parser marks it started).
    _p("s14-unclosed", SCRIPT, "<p>before</p><script>{{JS}}"),
    _p("s15-data-src", SCRIPT, '<script src="data:text/javascript,{{JS}}"></script>', fires=True),
    _p(
        "s16-in-table",
        SCRIPT,
        "<table><tr><script>{{JS}}</script><td>x</td></tr></table>",
        fires=True,
    ),
    # -------------------------------------------------------------- event handlers
    _p("h01-img-onerror", HANDLER, '<img src=x onerror="{{JS}}">', fires=True),
    _p("h02-mixed-case", HANDLER, "<IMG SRC=x OnErRoR={{JS}}>", fires=True),
    _p("h03-newline-before-eq", HANDLER, '<img src=x onerror\n="{{JS}}">', fires=True),
    _p("h04-slash-separators", HANDLER, '<img/src=x/onerror="{{JS}}">', fires=False),
    _p("h05-slash-attr", HANDLER, '<img src=x/ onerror="{{JS}}">', fires=True),
    _p("h06-body-onload", HANDLER, '<body onload="{{JS}}">', fires=True),
    _p("h07-body-onpageshow", HANDLER, '<body onpageshow="{{JS}}">', fires=True),
    _p("h08-svg-onload", HANDLER, '<svg onload="{{JS}}"></svg>', fires=True),
    _p(
        "h09-math-onclick",
        HANDLER,
        '<math onclick="{{JS}}"><mi>x</mi></math>',
        fires=True,
        trigger="click",
    ),
    _p(
        "h10-details-ontoggle",
        HANDLER,
        '<details open ontoggle="{{JS}}"><summary>s</summary>d</details>',
        fires=True,
    ),
    _p("h11-video-onerror", HANDLER, '<video src=x onerror="{{JS}}"></video>', fires=True),
    _p(
        "h12-source-onerror",
        HANDLER,
        '<video><source src=x onerror="{{JS}}"></video>',
        fires=True,
    ),
    _p("h13-audio-onerror", HANDLER, '<audio src=x onerror="{{JS}}"></audio>', fires=True),
    _p(
        "h14-autofocus-onfocus",
        HANDLER,
        '<input autofocus onfocus="{{JS}}">',
        fires=None,
        trigger="focus",
    ),
    _p(
        "h15-onmouseover",
        HANDLER,
        '<div onmouseover="{{JS}}" style="position:fixed;inset:0">cover</div>',
        fires=True,
        trigger="hover",
    ),
    _p("h16-style-onload", HANDLER, '<style onload="{{JS}}">p{color:red}</style>', fires=True),
    _p("h17-iframe-onload", HANDLER, '<iframe onload="{{JS}}"></iframe>', fires=True),
    _p(
        "h18-anchor-onclick",
        HANDLER,
        '<a href="#" onclick="{{JS}}">click</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "h19-tabindex-onfocus",
        HANDLER,
        '<span tabindex=1 onfocus="{{JS}}">focus me</span>',
        fires=True,
        trigger="focus",
    ),
    _p("h20-image-alias", HANDLER, '<image src=x onerror="{{JS}}">', fires=True),
    _p(
        "h21-object-onerror",
        HANDLER,
        '<object data="{{X}}" onerror="{{JS}}"></object>',
        fires=None,
        loads=True,
    ),
    _p("h22-unquoted-gt", HANDLER, "<img src=x onerror={{JS}}//>", fires=True),
    _p("h23-backtick-quote", HANDLER, "<img src=`x` onerror=`{{JS}}`>"),
    _p(
        "h24-attr-glued",
        HANDLER,
        '<a href="{{X}}"onmouseover="{{JS}}">glued</a>',
        fires=True,
        trigger="hover",
    ),
    # ------------------------------------------------------------ javascript: URLs
    _p("j01-href", JS_URL, '<a href="javascript:{{JS}}">link</a>', fires=True, trigger="click"),
    _p(
        "j02-mixed-case",
        JS_URL,
        '<a href="JaVaScRiPt:{{JS}}">link</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j03-leading-space-control",
        JS_URL,
        '<a href=" &#x01; javascript:{{JS}}">link</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j04-tab-in-scheme",
        JS_URL,
        '<a href="java\tscript:{{JS}}">link</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j05-newline-in-scheme",
        JS_URL,
        '<a href="jav\nas&#13;cript:{{JS}}">link</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j06-entity-tab",
        JS_URL,
        '<a href="java&#x09;scr&Tab;ipt&colon;{{JS}}">link</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j07-decimal-entities",
        JS_URL,
        '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;{{JS}}">link</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j08-padded-entities-no-semicolon",
        JS_URL,
        '<a href="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105'
        '&#0000112&#0000116&#0000058{{JS}}">link</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j09-hex-entities",
        JS_URL,
        '<a href="&#x6A;&#x41;&#x56;&#x61;&#x53;&#x63;&#x52;&#x69;&#x50;&#x74;&#x3A;{{JS}}">'
        "link</a>",
        fires=True,
        trigger="click",
    ),
    _p("j10-iframe-src", JS_URL, '<iframe src="javascript:{{JS}}"></iframe>', fires=True),
    _p(
        "j11-form-action",
        JS_URL,
        '<form action="javascript:{{JS}}"><input type=submit value=go></form>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j12-formaction",
        JS_URL,
        '<form><button formaction="javascript:{{JS}}">go</button></form>',
        fires=True,
        trigger="click",
    ),
    _p(
        "j13-area",
        JS_URL,
        '<map name="m-j13"><area shape=rect coords="0,0,50,50" href="javascript:{{JS}}"></map>'
        '<img usemap="#m-j13" width=50 height=50 alt="map">',
        fires=True,
        trigger="click",
    ),
    _p("j14-object-data", JS_URL, '<object data="javascript:{{JS}}"></object>', fires=None),
    _p("j15-embed-src", JS_URL, '<embed src="javascript:{{JS}}">', fires=None),
    _p(
        "j16-meta-refresh",
        JS_URL,
        '<meta http-equiv="refresh" content="0;url=javascript:{{JS}}">',
        fires=None,
    ),
    _p("j17-srcdoc", JS_URL, '<iframe srcdoc="{{SRCDOC}}"></iframe>', fires=True),
    _p("j18-vbscript", JS_URL, '<a href="vbscript:msgbox(1)">vb</a>'),
    _p(
        "j19-input-image-formaction",
        JS_URL,
        '<form><input type=image alt=go formaction="javascript:{{JS}}"></form>',
        fires=True,
        trigger="click",
    ),
    _p("j20-frameset", JS_URL, '<frameset><frame src="javascript:{{JS}}"></frameset>', fires=None),
    # ------------------------------------------------------------------ data: URLs
    _p(
        "d01-href-html",
        DATA_URL,
        '<a href="data:text/html;base64,{{B64HTML}}">open</a>',
        fires=True,
        trigger="click",
    ),
    _p(
        "d02-iframe-html",
        DATA_URL,
        '<iframe src="data:text/html;base64,{{B64HTML}}"></iframe>',
        fires=True,
    ),
    _p(
        "d03-iframe-html-plain",
        DATA_URL,
        '<iframe src="data:text/html,<script>{{JS}}</script>"></iframe>',
        fires=True,
    ),
    _p(
        "d04-object-html",
        DATA_URL,
        '<object data="data:text/html;base64,{{B64HTML}}"></object>',
        fires=True,
    ),
    _p("d05-embed-svg", DATA_URL, '<embed src="data:image/svg+xml;base64,{{B64SVG}}">', fires=True),
    _p(
        "d06-iframe-svg",
        DATA_URL,
        '<iframe src="data:image/svg+xml;base64,{{B64SVG}}"></iframe>',
        fires=True,
    ),
    _p("d07-img-svg", DATA_URL, '<img src="data:image/svg+xml;base64,{{B64SVG}}">'),
    _p("d08-img-html", DATA_URL, '<img src="data:text/html;base64,{{B64HTML}}">'),
    _p(
        "d09-form-action",
        DATA_URL,
        '<form action="data:text/html;base64,{{B64HTML}}" method=get>'
        "<input type=submit value=go></form>",
        fires=None,
        trigger="click",
    ),
    _p(
        "d10-formaction",
        DATA_URL,
        '<form><button formaction="data:text/html;base64,{{B64HTML}}">go</button></form>',
        fires=None,
        trigger="click",
    ),
    _p(
        "d11-meta-refresh",
        DATA_URL,
        '<meta http-equiv="refresh" content="0;url=data:text/html;base64,{{B64HTML}}">',
        fires=None,
    ),
    _p("d12-embed-html", DATA_URL, '<embed src="data:text/html;base64,{{B64HTML}}">', fires=True),
    _p(
        "d13-mixed-case",
        DATA_URL,
        '<iframe src="DaTa:TeXt/HtMl;base64,{{B64HTML}}"></iframe>',
        fires=True,
    ),
    _p(
        "d14-srcset-html",
        DATA_URL,
        '<img srcset="data:text/html;base64,{{B64HTML}} 1x, '
        'data:image/svg+xml;base64,{{B64SVG}} 2x">',
    ),
    # ------------------------------------------------------------------------ SVG
    _p("v01-script", SVG, "<svg><script>{{JS}}</script></svg>", fires=True),
    _p(
        "v02-script-href",
        SVG,
        '<svg><script href="data:text/javascript,{{JS}}"></script></svg>',
        fires=True,
    ),
    _p(
        "v03-use-data",
        SVG,
        '<svg><use href="data:image/svg+xml;base64,{{B64SVG}}#a"></use></svg>',
    ),
    _p("v04-use-remote", SVG, '<svg><use href="{{X}}#a"></use></svg>', loads=True),
    _p(
        "v05-foreignobject",
        SVG,
        '<svg><foreignObject width=50 height=50><img src=x onerror="{{JS}}"></foreignObject></svg>',
        fires=True,
    ),
    _p(
        "v06-animate-href",
        SVG,
        '<svg width=100 height=40><a><animate attributeName=href to="javascript:{{JS}}" '
        "fill=freeze dur=0.01s></animate><text x=5 y=20>animated</text></a></svg>",
        fires=True,
        trigger="click",
    ),
    _p(
        "v07-animate-onbegin",
        SVG,
        '<svg><animate onbegin="{{JS}}" attributeName=x dur=1s></animate></svg>',
        fires=True,
    ),
    _p(
        "v08-set-onload",
        SVG,
        '<svg><set attributeName=onload to="{{JS}}"></set></svg>',
    ),
    _p(
        "v09-xlink-href",
        SVG,
        '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width=60 height=60>'
        '<a xlink:href="javascript:{{JS}}"><rect width=60 height=60></rect></a></svg>',
        fires=True,
        trigger="click",
    ),
    _p(
        "v10-image-remote",
        SVG,
        '<svg><image href="{{R}}" width=10 height=10></image></svg>',
        loads=True,
    ),
    _p("v11-style-import", SVG, '<svg><style>@import "{{X}}";</style></svg>', loads=True),
    _p(
        "v12-title-breakout",
        SVG,
        '<svg><title><img src=x onerror="{{JS}}"></title></svg>',
        fires=True,
    ),
    _p(
        "v13-desc-integration",
        SVG,
        '<svg><desc><img src=x onerror="{{JS}}"></desc></svg>',
        fires=True,
    ),
    _p(
        "v14-feimage",
        SVG,
        '<svg><filter id=f14><feImage href="{{R}}"></feImage></filter>'
        '<rect filter="url(#f14)" width=5 height=5></rect></svg>',
        loads=None,
    ),
    _p("v15-image-onerror", SVG, '<svg><image href=x onerror="{{JS}}"></image></svg>', fires=True),
    # ---------------------------------------------------------------------- MathML
    _p(
        "m01-mtext-img",
        MATHML,
        '<math><mtext><img src=x onerror="{{JS}}"></mtext></math>',
        fires=True,
    ),
    _p("m02-mi-script", MATHML, "<math><mi><script>{{JS}}</script></mi></math>", fires=True),
    _p(
        "m03-annotation-xml",
        MATHML,
        '<math><annotation-xml encoding="text/html"><img src=x onerror="{{JS}}">'
        "</annotation-xml></math>",
        fires=True,
    ),
    _p(
        "m04-href",
        MATHML,
        '<math href="javascript:{{JS}}"><mi>x</mi></math>',
        fires=None,
        trigger="click",
    ),
    _p(
        "m05-maction",
        MATHML,
        "<math><maction actiontype=toggle><mtext><script>{{JS}}</script></mtext></maction></math>",
        fires=True,
    ),
    _p(
        "m06-style-breakout",
        MATHML,
        '<math><style><img src=x onerror="{{JS}}"></style></math>',
        fires=True,
    ),
    # ------------------------------------------------ meta refresh, base, forms
    _p(
        "b01-meta-refresh",
        DOCUMENT,
        '<meta http-equiv="refresh" content="0;url={{X}}">',
        loads=True,
    ),
    _p(
        "b02-meta-refresh-own",
        DOCUMENT,
        "<META HTTP-EQUIV=Refresh CONTENT=\"0; URL='{{OWN}}'\">",
        loads=True,
    ),
    _p(
        "b03-base-href",
        DOCUMENT,
        '<base href="{{X}}/"><img src="pic.png" alt="b"><a href="rel">rel</a>',
        loads=True,
    ),
    _p("b04-base-target", DOCUMENT, '<base target="_top"><p>base target</p>'),
    _p(
        "b05-form-post",
        DOCUMENT,
        '<form action="{{X}}" method=post><input name=a value=b>'
        "<input type=submit value=send></form>",
        loads=True,
        trigger="click",
    ),
    _p("b06-input-image", DOCUMENT, '<input type=image src="{{R}}" alt="in">', loads=True),
    _p(
        "b07-form-attr",
        DOCUMENT,
        '<form id=f-b07></form><button form=f-b07 formaction="{{X}}">go</button>',
        loads=True,
        trigger="click",
    ),
    _p(
        "b08-password-form",
        DOCUMENT,
        '<form action="{{OWN}}"><label>Password <input type=password name=p></label>'
        "<select name=s><option>1</option></select><textarea name=t>t</textarea></form>",
    ),
    _p("b09-link-prefetch", DOCUMENT, '<link rel=prefetch href="{{X}}">', loads=None),
    _p("b10-link-preload", DOCUMENT, '<link rel=preload as=image href="{{R}}">', loads=True),
    _p(
        "b11-anchor-ping",
        DOCUMENT,
        '<a href="#b11" ping="{{X}}">ping</a>',
        loads=True,
        trigger="click",
    ),
    # ------------------------------------------------------------------------- CSS
    _p("c01-expression", CSS, '<div style="width:expression({{JS}})">expr</div>'),
    _p(
        "c02-expression-escaped",
        CSS,
        '<div style="width:expr\\65 ssion({{JS}})">expr</div>',
    ),
    _p("c03-behavior", CSS, '<div style="behavior:url({{X}}.htc)">behavior</div>'),
    _p("c04-moz-binding", CSS, '<div style="-moz-binding:url({{X}}#xbl)">binding</div>'),
    _p("c05-url-attr", CSS, '<div style="background:url({{R}})">bg</div>', loads=True),
    _p("c06-url-quoted", CSS, "<div style=\"background-image:url('{{R}}')\">bg</div>", loads=True),
    _p(
        "c07-url-escaped-name",
        CSS,
        '<div style="background-image:u\\72 l({{R}})">bg</div>',
        loads=True,
    ),
    _p(
        "c08-url-entity",
        CSS,
        '<div style="background-image:url(&quot;{{R}}&quot;)">bg</div>',
        loads=True,
    ),
    _p("c09-import", CSS, "<style>@import url({{X}});p{color:red}</style>", loads=True),
    _p("c10-import-string", CSS, "<style>@import '{{X}}' screen;</style>", loads=True),
    _p(
        "c11-font-face",
        CSS,
        "<style>@font-face{font-family:hostile11;src:url({{R}}) format('woff')}"
        ".c11{font-family:hostile11}</style><p class=c11>font</p>",
        loads=True,
    ),
    _p(
        "c12-image-set",
        CSS,
        "<div style=\"background-image:image-set('{{R}}' 1x)\">set</div>",
        loads=True,
    ),
    _p(
        "c13-webkit-image-set",
        CSS,
        '<div style="background-image:-webkit-image-set(url({{R}}) 1x)">set</div>',
        loads=True,
    ),
    _p(
        "c14-style-block",
        CSS,
        "<style>.c14{background:url({{R}})}</style><div class=c14>block</div>",
        loads=True,
    ),
    _p("c15-link-stylesheet", CSS, '<link rel=stylesheet href="{{X}}">', loads=True),
    _p(
        "c16-style-breakout",
        CSS,
        "<style>p{background:url('</style><img src=x onerror=\"{{JS}}\">')}</style>",
        fires=True,
    ),
    _p("c17-url-javascript", CSS, '<div style="background:url(javascript:{{JS}})">js</div>'),
    _p(
        "c18-media-nested",
        CSS,
        "<style>@media all{@supports (display:block){.c18{background:url({{R}})}}}</style>"
        "<div class=c18>media</div>",
        loads=True,
    ),
    _p(
        "c19-border-image",
        CSS,
        '<div style="border:5px solid;border-image:url({{R}}) 30 round">border</div>',
        loads=True,
    ),
    _p(
        "c20-custom-property",
        CSS,
        "<style>:root{--c20:url({{R}})}.c20{background:var(--c20)}</style><div class=c20>var</div>",
        loads=True,
    ),
    _p(
        "c21-attr-image-set",
        CSS,
        '<div title="{{R}}" style="background-image:image-set(attr(title))">attr</div>',
        loads=None,
    ),
    _p("c22-import-own", CSS, "<style>@import url({{OWN}}/s.css);</style>", loads=True),
    _p("c23-namespace", CSS, "<style>@namespace url({{X}});</style>"),
    _p(
        "c24-list-style",
        CSS,
        '<ul style="list-style-image:url({{R}})"><li>item</li></ul>',
        loads=True,
    ),
    _p(
        "c25-mask",
        CSS,
        '<div style="-webkit-mask-image:url({{R}});mask-image:url({{R}})">mask</div>',
        loads=True,
    ),
    _p(
        "c26-decl-breakout",
        CSS,
        '<div style="color:red;}body{background:url({{R}})">breakout</div>',
    ),
    _p(
        "c27-comment-in-url",
        CSS,
        "<style>.c27{background:url(/**/{{R}})}</style><div class=c27>c</div>",
    ),
    _p("c28-cursor", CSS, '<div style="cursor:url({{R}}),auto">cursor</div>', loads=None),
    _p(
        "c29-content-url",
        CSS,
        "<style>.c29::before{content:url({{R}})}</style><div class=c29>c</div>",
        loads=True,
    ),
    _p(
        "c30-var-image-set",
        CSS,
        '<style>:root{--c30:"{{R}}"}.c30{background-image:image-set(var(--c30) 1x)}</style>'
        "<div class=c30>var</div>",
        loads=True,
    ),
    _p(
        "c31-color-scheme",
        CSS,
        "<style>@media (prefers-color-scheme: dark){.c31{background:url({{R}}/dark)}}"
        "@media (prefers-color-scheme:light){.c31{background:url({{R}}/light)}}</style>"
        "<div class=c31>scheme</div>",
        loads=True,
    ),
    _p(
        "c32-media-prelude-breakout",
        CSS,
        '<style>@media (prefers-color-scheme: dark), (x:"</style><img src=x onerror="{{JS}}">")'
        "{p{color:red}}</style>",
        fires=True,
    ),
    # ------------------------------------------------------------- remote loads
    _p("r01-tracking-pixel", REMOTE, '<img src="{{R}}" width=1 height=1 alt="">', loads=True),
    _p("r02-srcset", REMOTE, '<img srcset="{{R}}/1 1x, {{R}}/2 2x" alt="s">', loads=True),
    _p(
        "r03-picture-source",
        REMOTE,
        '<picture><source srcset="{{R}}"><img alt="p"></picture>',
        loads=True,
    ),
    _p(
        "r04-table-background",
        REMOTE,
        '<table background="{{R}}" width=50 height=20><tr><td>t</td></tr></table>',
        loads=True,
    ),
    _p(
        "r05-td-background",
        REMOTE,
        '<table><tr><td background="{{R}}" width=50 height=20>td</td></tr></table>',
        loads=True,
    ),
    _p("r06-body-background", REMOTE, '<body background="{{R}}">', loads=True),
    _p("r07-video-poster", REMOTE, '<video poster="{{R}}" width=10 height=10></video>', loads=True),
    _p("r08-protocol-relative", REMOTE, '<img src="{{R_NOSCHEME}}" alt="pr">', loads=True),
    _p("r09-own-origin", REMOTE, '<img src="{{OWN}}" alt="own">', loads=True),
    _p("r10-own-relative", REMOTE, '<img src="{{OWNPATH}}" alt="rel">', loads=True),
    _p("r11-spaces", REMOTE, '<img src="  {{R}}  " alt="sp">', loads=True),
    _p("r12-upper-scheme", REMOTE, '<img src="{{R_UPPER}}" alt="up">', loads=True),
    _p("r13-iframe", REMOTE, '<iframe src="{{X}}"></iframe>', loads=True),
    _p("r14-object", REMOTE, '<object data="{{X}}" type="text/html"></object>', loads=True),
    _p("r15-embed", REMOTE, '<embed src="{{X}}" type="text/html">', loads=True),
    _p("r16-audio", REMOTE, '<audio src="{{R}}" preload=auto></audio>', loads=None),
    _p("r17-style-attr-body", REMOTE, '<body style="background:url({{R}})">', loads=True),
    _p("r18-div-background", REMOTE, '<div background="{{R}}">div</div>'),
    _p("r19-backslashes", REMOTE, '<img src="{{R_BACKSLASH}}" alt="bs">', loads=True),
    _p("r20-lowsrc-dynsrc", REMOTE, '<img lowsrc="{{R}}" dynsrc="{{R}}" alt="old">'),
    # ----------------------------------------------------------------------- mXSS
    _p(
        "x01-svg-p-style",
        MXSS,
        '<svg></p><style><a id="</style><img src=x onerror="{{JS}}">"></a></style></svg>',
        fires=True,
    ),
    _p(
        "x02-math-mglyph-style",
        MXSS,
        '<math><mtext><table><mglyph><style><img src=x onerror="{{JS}}">',
        fires=False,
    ),
    _p(
        "x03-math-deep-namespace",
        MXSS,
        '<math><mtext><h1><a><h6></a></h6><mglyph><svg><mtext><style><a title="</style>'
        '<img src=x onerror="{{JS}}">"></a></style></mtext></svg></mglyph></h1></mtext></math>',
        fires=False,
    ),
    _p(
        "x04-form-math-mglyph",
        MXSS,
        '<form><math><mtext></form><form><mglyph><style></math><img src=x onerror="{{JS}}">',
        fires=False,
    ),
    _p(
        "x05-noembed",
        MXSS,
        '<noembed><p title="</noembed><img src=x onerror="{{JS}}">"></p></noembed>',
        fires=True,
    ),
    _p(
        "x06-xmp", MXSS, '<xmp><p title="</xmp><img src=x onerror="{{JS}}">"></p></xmp>', fires=True
    ),
    _p(
        "x07-listing",
        MXSS,
        '<listing><img title="</listing><img src=x onerror={{JS}}>"></listing>',
    ),
    _p(
        "x08-noframes",
        MXSS,
        '<noframes><p title="</noframes><img src=x onerror="{{JS}}">"></p></noframes>',
        fires=True,
    ),
    _p(
        "x09-iframe-content",
        MXSS,
        '<iframe><p title="</iframe><img src=x onerror="{{JS}}">"></p></iframe>',
        fires=True,
    ),
    _p("x10-empty-comment", MXSS, '<!--><img src=x onerror="{{JS}}">-->', fires=True),
    _p("x11-dash-comment", MXSS, '<!---><img src=x onerror="{{JS}}">-->', fires=True),
    _p("x12-bang-close", MXSS, '<!-- x --!><img src=x onerror="{{JS}}"> -->', fires=True),
    _p("x13-cdata-html", MXSS, '<![CDATA[><img src=x onerror="{{JS}}">]]>', fires=True),
    _p(
        "x14-cdata-svg",
        MXSS,
        '<svg><![CDATA[</svg><img src=x onerror="{{JS}}">]]></svg>',
    ),
    _p(
        "x15-template",
        MXSS,
        '<template><img src=x onerror="{{JS}}"><script>{{JS}}</script></template>',
    ),
    _p(
        "x16-template-style",
        MXSS,
        '<template><style></template><img src=x onerror="{{JS}}"></style></template>',
    ),
    _p(
        "x17-svg-style-entities",
        MXSS,
        '<svg><style>&lt;img src=x onerror="{{JS}}"&gt;</style></svg>',
    ),
    _p(
        "x18-noscript-style",
        MXSS,
        '<noscript><style></noscript><img src=x onerror="{{JS}}"></style></noscript>',
        fires=True,
    ),
    _p(
        "x19-select-template",
        MXSS,
        '<select><template><style><!--</style><img src=x onerror="{{JS}}">--></style>'
        "</template></select>",
        fires=False,
    ),
    _p(
        "x20-table-svg-style",
        MXSS,
        '<table><svg><style><a title="</style><img src=x onerror="{{JS}}">"></a></style>'
        "</svg></table>",
        fires=False,
    ),
    _p(
        "x21-comment-in-attr",
        MXSS,
        '<p title="<!--"></p><img src=x onerror="{{JS}}"><p title="-->"></p>',
        fires=True,
    ),
    _p(
        "x22-style-comment-close",
        MXSS,
        '<style><!--</style><img src=x onerror="{{JS}}">--></style>',
        fires=True,
    ),
    _p(
        "x23-processing-instruction",
        MXSS,
        '<?xml-stylesheet href="{{X}}"?><img src=x onerror="{{JS}}">',
        fires=True,
    ),
    _p(
        "x24-plaintext-tail", MXSS, '<img src=x onerror="{{JS}}"><plaintext><b>tail</b>', fires=True
    ),
)


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment of a header mail: its raw ``filename`` parameter as it goes on the
    wire (``{{...}}`` tokens filled in), its type and its bytes (tokens filled in too)."""

    filename: str
    content_type: str
    body: str
    #: Send the file name as written (an encoded word, say) instead of letting the
    #: email library encode it (RFC 2231).
    raw_filename: bool = False


@dataclass(frozen=True, slots=True)
class HeaderMail:
    """One mail whose subject, sender, recipient name and attachment names are hostile.

    ``subject`` and ``from_`` go on the wire as written (after the tokens; ``{{EW:...}}``
    becomes RFC 2047 encoded words, and a non-ASCII value is encoded whole), so they may
    be encoded words or quoted strings; the decoded values the page must show literally
    are what the API returns for them.
    """

    pid: str
    subject: str
    from_: str
    to_name: str
    text: str
    attachments: tuple[Attachment, ...] = ()
    #: Substrings the decoded subject / sender name must contain (proof that the markup
    #: reached the reader undecoded into elements).
    subject_has: str = ""
    from_has: str = ""


_LONG = "<i data-hostile=long>&#x202E;very long</i> " * 70

HEADER_MAILS: tuple[HeaderMail, ...] = (
    HeaderMail(
        pid="hd1-plain-markup",
        subject='Re: <img src=x onerror="{{JS}}"><b data-hostile=subject>invoice</b>',
        from_='"<img src=x onerror={{JS}}><b data-hostile=from>Boss</b>" <boss@example.org>',
        to_name="<svg onload={{JS}} data-hostile=to>you</svg>",
        text="Text part: <script>{{JS}}</script> & <img src=x onerror={{JS}}> &amp; done",
        attachments=(
            Attachment(
                '<img src=x data-hostile=file onerror="{{JS}}">.html',
                "text/html",
                "<!doctype html><script>{{JS}}</script><img src=x onerror={{JS}}>",
            ),
            Attachment("report\u202efdp.exe", "application/octet-stream", "MZ not really an exe"),
        ),
        subject_has="<img src=x onerror=",
        from_has="<img src=x onerror=",
    ),
    HeaderMail(
        pid="hd2-encoded-words",
        subject="{{EW:<script>{{JS}}</script><svg/onload={{JS}} data-hostile=ew>}}",
        from_="{{EW:<iframe src=javascript:{{JS}} data-hostile=ewfrom>}} <ew@example.org>",
        to_name="=?UTF-8?Q?=3Cb_data-hostile=3Dewto=3Ebold=3C/b=3E?=",
        text="plain",
        attachments=(
            Attachment(
                "{{EW:<svg data-hostile=file onload={{JS}}>.svg}}",
                "image/svg+xml",
                '<svg xmlns="http://www.w3.org/2000/svg" onload="{{JS}}"><script>{{JS}}</script>'
                "</svg>",
                raw_filename=True,
            ),
            Attachment(
                "photo.png",
                "image/png",
                "<html><script>{{JS}}</script><img src=x onerror={{JS}}></html>",
            ),
        ),
        subject_has="<script>",
        from_has="<iframe src=javascript:",
    ),
    HeaderMail(
        pid="hd3-bidi",
        subject="Invoice \u202egpj.exe\u202c \u2066<b data-hostile=bidi>x</b>\u2069 \u200f",
        from_="{{EW:\u202eadmin\u202c <u data-hostile=bidifrom>}} <bidi@example.org>",
        to_name="\u202eeman\u202c",
        text="bidi \u202e text \u202c",
        attachments=(
            Attachment("../../../../etc/passwd", "text/plain", "root:x:0:0"),
            Attachment('quote"semi;back\\slash<b data-hostile=file>.txt', "text/plain", "q"),
        ),
        subject_has="\u202egpj.exe",
        from_has="\u202eadmin",
    ),
    HeaderMail(
        pid="hd4-very-long",
        subject="Long " + _LONG,
        from_='"' + ("<b data-hostile=longfrom>N</b>" * 40) + '" <long@example.org>',
        to_name="T" * 300,
        text="long",
        attachments=(
            Attachment(
                "<img src=x data-hostile=file onerror={{JS}}>" + "n" * 300 + ".html",
                "text/html",
                "<script>{{JS}}</script>",
            ),
        ),
        subject_has="<i data-hostile=long>",
        from_has="<b data-hostile=longfrom>",
    ),
)
