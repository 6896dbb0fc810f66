"""Header fields: the header block of an entity, unfolding, RFC 2047 encoded words,
raw 8-bit text (RFC 6532) and MIME parameters (RFC 2045, RFC 2231).

The block is read the way the stdlib's feed parser reads it, so that both agree on
which lines are headers: a field is a name of printable ASCII without a colon, the
colon, and the rest of the line with every following line that starts with a space
or a tab; the block ends at the first blank line, or (a defect) at the first line
that is neither a field nor a continuation. An mbox ``From`` line is skipped.
"""

from __future__ import annotations

import binascii
import re
from urllib.parse import unquote_to_bytes

from mail import _charset

#: Header fields read per entity; the rest of an oversized block is skipped.
MAX_FIELDS = 1000
#: MIME parameters read per header; RFC 2231 sections read per parameter.
MAX_PARAMS = 64
MAX_SECTIONS = 100

_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]*:")
#: The line break that ends a field: one not followed by a continuation line.
_FIELD_END = re.compile(rb"\r\n(?![ \t])|\r(?![\n \t])|\n(?![ \t])")
_LF_ENDING_FIELD = re.compile(rb"\n(?![ \t])")
_BARE_CR = re.compile(rb"\r(?!\n)")
_BLANK_LINE = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)")
#: The bytes a field name is made of: printable ASCII but the colon.
_NAME_BYTES = bytes(range(0x21, 0x3A)) + bytes(range(0x3B, 0x7F))
#: Header blocks up to this size are split in one go; larger ones are read field by
#: field. Past this many continuation lines a field's end is found by a pattern.
_CLEAN_BLOCK_BYTES = 256 * 1024
_CONTINUATIONS_SCANNED = 64

Fields = list[tuple[bytes, bytes]]


def read_fields(
    buf: bytes, pos: int, end: int, errors: list[str], where: str
) -> tuple[Fields, int]:
    """The header fields of the entity at ``buf[pos:end]`` as (name, raw value) pairs,
    and where its body starts."""
    fast = _read_clean_block(buf, pos, end)
    if fast is not None:
        return fast
    fields: Fields = []
    start = pos
    match_name = _NAME.match
    while pos < end:
        m = match_name(buf, pos, end)
        if m is not None:
            colon = m.end()
            stop, nxt = _field_end(buf, colon, end)
            if colon - 1 == pos:
                errors.append(f"{where}: header line with no name")
            elif len(fields) < MAX_FIELDS:
                fields.append((buf[pos : colon - 1], buf[colon:stop]))
            else:
                errors.append(f"{where}: more than {MAX_FIELDS} header fields; the rest skipped")
                blank = _BLANK_LINE.search(buf, pos, end)
                return fields, end if blank is None else blank.end()
            pos = nxt
            continue
        first = buf[pos]
        if first == 13 or first == 10:  # the blank line: the body follows
            return fields, pos + (2 if buf.startswith(b"\r\n", pos) else 1)
        is_from_line = buf.startswith(b"From ", pos)
        if first == 32 or first == 9 or is_from_line:
            line_end = _field_end(buf, pos, end)[1]
            if is_from_line and pos != start:
                if _ends_block(buf, line_end, end):
                    # A From line as the last line of the block starts the body.
                    errors.append(f"{where}: header block not ended by a blank line")
                    return fields, pos
                errors.append(f"{where}: misplaced From line among the headers")
            elif not is_from_line:
                errors.append(f"{where}: continuation line before any header")
            pos = line_end
            continue
        errors.append(f"{where}: header block not ended by a blank line")
        return fields, pos
    return fields, end


def _read_clean_block(buf: bytes, pos: int, end: int) -> tuple[Fields, int] | None:
    """The common case in a few C calls: a block of well-formed fields with CRLF or
    LF line ends and a blank line after it. None for anything else."""
    crlf = buf.find(b"\n\r\n", pos, end)
    lf = buf.find(b"\n\n", pos, end if crlf < 0 else crlf + 1)
    if crlf < 0 and lf < 0:
        return None
    stop = crlf if lf < 0 or (0 <= crlf < lf) else lf
    if stop - pos > _CLEAN_BLOCK_BYTES:
        return None
    body = stop + (3 if stop == crlf else 2)
    block = buf[pos : stop + 1]
    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        return None  # a bare CR
    lines = block.split(b"\n")
    lines.pop()
    if len(lines) > MAX_FIELDS:
        return None
    fields: Fields = []
    name = b""
    value: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not value:
                return None
            value.append(line)
            continue
        if value:
            fields.append((name, b"\n".join(value)))
        colon = line.find(b":")
        if colon <= 0 or line[:colon].translate(None, _NAME_BYTES):
            return None
        name = line[:colon]
        value = [line[colon + 1 :]]
    if value:
        fields.append((name, b"\n".join(value)))
    return fields, body


def _field_end(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Where the field whose value starts at ``pos`` ends, and where the next line
    starts: the first line break not followed by a space or a tab."""
    scan = pos
    for _ in range(_CONTINUATIONS_SCANNED):
        nl = buf.find(b"\n", scan, end)
        stop = end if nl < 0 else nl - 1 if nl > scan and buf[nl - 1] == 13 else nl
        if buf.find(b"\r", scan, stop) >= 0:
            break  # a bare CR ends a line too: let the pattern sort it out
        if nl < 0:
            if stop < end:  # a CR right at the end
                break
            return end, end
        if nl + 1 < end and buf[nl + 1] in (32, 9):
            scan = nl + 1
            continue
        return stop, nl + 1
    else:
        # A long folded field: find the first LF not followed by white space, and
        # check that no bare CR comes before it, with two searches that run in C.
        lf = _LF_ENDING_FIELD.search(buf, scan, end)
        limit = end if lf is None else lf.start()
        if _BARE_CR.search(buf, scan, limit) is None:
            if lf is None:
                return end, end
            at = lf.start()
            return (at - 1 if buf[at - 1] == 13 else at), at + 1
    m = _FIELD_END.search(buf, scan, end)
    return (end, end) if m is None else m.span()


def _ends_block(buf: bytes, pos: int, end: int) -> bool:
    if pos >= end or buf[pos] in (13, 10):
        return True
    return _NAME.match(buf, pos, end) is None and not buf.startswith(b"From ", pos)


def unfold(raw: bytes, limit: int | None = None) -> bytes:
    """The value with its line breaks removed (the folding white space stays), as
    ``policy.default`` unfolds, without the white space that follows the colon; with
    ``limit``, of about the first ``limit`` bytes only (enough for a cut at ``limit``)."""
    if limit is not None and len(raw) > 2 * limit:
        raw = raw[: 2 * limit]
    if b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\r", b"").replace(b"\n", b"")
    return raw.lstrip(b" \t")


def cap_raw(raw: bytes, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of ``raw``, cut at white space when one is near the end
    (so that no encoded word is cut in two); and whether anything was cut."""
    if len(raw) <= limit:
        return raw, False
    cut = max(raw.rfind(b" ", 0, limit), raw.rfind(b"\t", 0, limit))
    if cut < limit // 2:
        cut = limit
    return raw[:cut], True


def text_of(raw: bytes, errors: list[str], where: str) -> str:
    """Raw header bytes as text: ASCII, UTF-8 (RFC 6532), else the best fallback."""
    if raw.isascii():
        return raw.decode("ascii")
    return _charset.decode_undeclared(raw, errors, where)


def decode_value(raw: bytes, errors: list[str], where: str) -> str:
    """An unstructured header value (already unfolded) as display text."""
    if raw.isascii():
        text = raw.decode("ascii")
        return decode_words(text, errors, where) if "=?" in text else text
    return decode_words(_charset.decode_undeclared(raw, errors, where), errors, where)


# -- RFC 2047 ------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def decode_words(text: str, errors: list[str], where: str) -> str:
    """``text`` with its encoded words decoded.

    As RFC 2047 asks, and as ``policy.default`` does in unstructured fields, white
    space between two encoded words is dropped; adjacent words of one charset are
    decoded together, so a character split across two words comes out whole.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    run_label: str | None = None
    run: list[bytes] = []
    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos : m.start()]
        if run_label is None or gap.strip(" \t"):
            if run_label is not None:
                out.append(_decode_run(run, run_label, errors, where))
                run_label = None
            out.append(gap)
        label = m.group(1).partition("*")[0]
        data = q_bytes(m.group(3)) if m.group(2) in "qQ" else b_bytes(m.group(3), errors, where)
        if run_label is not None and label.lower() == run_label.lower():
            run.append(data)
        else:
            if run_label is not None:
                out.append(_decode_run(run, run_label, errors, where))
            run_label, run = label, [data]
        pos = m.end()
    if run_label is not None:
        out.append(_decode_run(run, run_label, errors, where))
    out.append(text[pos:])
    return "".join(out)


def _decode_run(run: list[bytes], label: str, errors: list[str], where: str) -> str:
    return _charset.decode(b"".join(run), label, errors, where)


def q_bytes(payload: str) -> bytes:
    data = payload.encode("ascii") if payload.isascii() else payload.encode("utf-8", "replace")
    return binascii.a2b_qp(data, header=True)


def b_bytes(payload: str, errors: list[str], where: str) -> bytes:
    data = payload.encode("ascii", "ignore")
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        pass
    clean = _B64_JUNK.sub(b"", data)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    clean += b"=" * (-len(clean) % 4)
    errors.append(f"{where}: malformed base64 in an encoded word")
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return b""


# -- MIME parameters -------------------------------------------------------------

_PARAM_NAME = re.compile(r"[^=;\s\"]+")
_QUOTED = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)("?)', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SPACE = " \t\r\n"
_SIMPLE_PARAM = re.compile(
    r'[ \t\r\n;]*([^=;\s"*]+)[ \t\r\n]*=[ \t\r\n]*(?:"([^"\\]*)"|([^;"\\]*))[ \t\r\n]*(?:;|\Z)'
)


def parse_params(text: str, errors: list[str], where: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; name=value; ...`` as the lower-cased value and the parameters
    (names lower-cased; RFC 2231 sections joined and decoded; the first one wins)."""
    semi = text.find(";")
    value = (text if semi < 0 else text[:semi]).strip(_SPACE).lower()
    if semi < 0:
        return value, {}
    plain: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    n = len(text)
    i = semi + 1
    count = 0
    # The common case, ``; name=token`` or ``; name="quoted"``, one match a parameter.
    match_simple = _SIMPLE_PARAM.match
    while i < n and count < MAX_PARAMS:
        m = match_simple(text, i)
        if m is None:
            break
        name, quoted, token = m.groups()
        name = name.lower()
        if "*" in name:
            break
        plain.setdefault(name, token.strip(_SPACE) if quoted is None else quoted)
        count += 1
        i = m.end()
    while i < n:
        while i < n and (text[i] in _SPACE or text[i] == ";"):
            i += 1
        if i >= n:
            break
        count += 1
        if count > MAX_PARAMS:
            errors.append(f"{where}: more than {MAX_PARAMS} parameters; the rest skipped")
            break
        m = _PARAM_NAME.match(text, i)
        if m is None:
            i = _next_semicolon(text, i)
            continue
        name = m.group().lower()
        i = m.end()
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != "=":
            i = _next_semicolon(text, i)
            continue
        i += 1
        while i < n and text[i] in _SPACE:
            i += 1
        if i < n and text[i] == '"':
            q = _QUOTED.match(text, i)
            assert q is not None  # the pattern matches any string that starts with '"'
            param = q.group(1)
            if "\\" in param:
                param = _QUOTED_PAIR.sub(r"\1", param)
            if not q.group(2):
                errors.append(f"{where}: unterminated quoted parameter {name!r}")
            i = _next_semicolon(text, q.end())
        else:
            j = _next_semicolon(text, i)
            param = text[i:j].strip(_SPACE)
            i = j
        star = name.find("*")
        if star < 0:
            plain.setdefault(name, param)
            continue
        base, section = name[:star], name[star + 1 :]
        encoded = section.endswith("*") or not section
        section = section.rstrip("*")
        if section and not (section.isdigit() and len(section) <= 3):
            continue
        extended.setdefault(base, []).append((int(section or 0), encoded, param))
    for base, pieces in extended.items():
        plain[base] = _join_sections(pieces, errors, where)
    return value, plain


def _next_semicolon(text: str, i: int) -> int:
    j = text.find(";", i)
    return len(text) if j < 0 else j


def _join_sections(pieces: list[tuple[int, bool, str]], errors: list[str], where: str) -> str:
    """RFC 2231: ``name*0*=utf-8''%E2%82%AC; name*1=...`` joined and decoded."""
    pieces.sort(key=lambda piece: piece[0])
    label: str | None = None
    chunks: list[bytes] = []
    for k, (_, encoded, param) in enumerate(pieces[:MAX_SECTIONS]):
        if encoded:
            if k == 0 and param.count("'") >= 2:
                label, _, param = param.split("'", 2)
            chunks.append(unquote_to_bytes(param))
        else:
            chunks.append(param.encode("utf-8", "surrogateescape"))
    data = b"".join(chunks)
    if label:
        return _charset.decode(data, label, errors, where)
    return _charset.decode_undeclared(data, errors, where)
