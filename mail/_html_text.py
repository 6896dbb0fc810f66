"""The visible text at the start of an HTML body, for the preview, in linear time.

Not an HTML parser: a scan from ``<`` to ``>`` with ``str.find``, which never goes
back, so every input costs one pass at most. Neither ``html.parser`` (quadratic on
unclosed tags: 128 KiB of ``<a`` took 27 s) nor selectolax's Lexbor (quadratic in
nesting: 200 KB of ``<div>`` took 3.9 s) is bounded that way. It skips comments,
declarations and the content of script, style, title and template elements; block
elements and line breaks separate words; character references are decoded. It stops
once it has the text it was asked for.
"""

from __future__ import annotations

import html
import re

_TAG_NAME = re.compile(r"(/?)([A-Za-z][^\s/>]*)")
#: Elements whose content is never shown (raw text or metadata).
_SKIPPED = frozenset({"script", "style", "title", "template", "xmp", "noembed", "noframes"})
_SKIPPED_END = {name: re.compile("</" + name, re.IGNORECASE) for name in _SKIPPED}
#: Elements that do not separate the words around them.
_INLINE = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "code",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "ins",
        "kbd",
        "mark",
        "nobr",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
        "wbr",
    }
)
_SPACE = re.compile(r"\s+")


def html_to_text(source: str, want: int) -> str:
    """At least ``want`` characters of visible text (white space collapsed) from the
    start of ``source``, or all of it if there is less."""
    out: list[str] = []
    had = 0
    budget = want * 4
    pos = 0
    n = len(source)
    while pos < n:
        if had >= budget:
            if len(_SPACE.sub(" ", html.unescape("".join(out))).strip()) >= want:
                break
            budget *= 2
        lt = source.find("<", pos)
        if lt < 0:
            out.append(source[pos:])
            break
        if lt > pos:
            out.append(source[pos:lt])
            had += lt - pos
        pos = _after_markup(source, lt, out)
        if pos < 0:
            break
    return _SPACE.sub(" ", html.unescape("".join(out))).strip()


def _after_markup(source: str, lt: int, out: list[str]) -> int:
    """Where the text resumes after the ``<`` at ``lt``; -1 when the rest of the
    document is inside this markup (an unclosed tag, comment or raw-text element)."""
    if source.startswith("<!--", lt):
        if source.startswith(">", lt + 4):
            return lt + 5
        if source.startswith("->", lt + 4):
            return lt + 6
        end = source.find("-->", lt + 4)
        return -1 if end < 0 else end + 3
    m = _TAG_NAME.match(source, lt + 1)
    if m is None:
        if source.startswith(("<!", "<?"), lt):
            gt = source.find(">", lt)
            return -1 if gt < 0 else gt + 1
        out.append("<")  # a "<" that starts no tag is text
        return lt + 1
    gt = source.find(">", m.end())
    if gt < 0:
        return -1
    name = m.group(2).lower()
    if not m.group(1) and name in _SKIPPED and not source.startswith("/", gt - 1):
        close = _SKIPPED_END[name].search(source, gt + 1)
        if close is None:
            return -1
        gt = source.find(">", close.end())
        return -1 if gt < 0 else gt + 1
    if name not in _INLINE:
        out.append(" ")
    return gt + 1
