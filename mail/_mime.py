"""The MIME tree: entities, multipart boundaries, transfer encodings, body selection.

Boundaries are found as the stdlib's feed parser finds them: ``--boundary`` at the
start of a line, then optionally ``--`` (the close delimiter), optional spaces or
tabs and the end of the line; the line break before a delimiter belongs to it;
adjacent delimiter lines make no empty part; a multipart whose boundary never occurs
is read as text. The scan is ``bytes.find`` over each region once (a compiled
pattern when a hostile body repeats the delimiter thousands of times), and the tree is
bounded in depth and in parts.

The text body is the first ``text/plain`` part, the HTML body the first
``text/html`` part, that is not ``Content-Disposition: attachment``; every other leaf
(``message/rfc822`` included, which is not descended into) is an attachment.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field

from mail import _charset
from mail._header import (
    Fields,
    cap_raw,
    decode_words,
    parse_params,
    read_fields,
    text_of,
    unfold,
)
from schemas.mail import AttachmentInfo

MAX_DEPTH = 50
MAX_PARTS = 500
#: Raw bytes read of a structural header (Content-Type and the like).
STRUCTURE_HEADER_BYTES = 16 * 1024
FILENAME_CHARS = 1024
CONTENT_ID_CHARS = 998
#: More near-miss delimiters than this in one region and the scan uses a pattern.
_FIND_LOOP_MISSES = 1000
_MAX_DELIMITERS = 4 * MAX_PARTS
#: Bytes of a multipart body searched for the delimiter its parts really use.
_GUESS_WINDOW = 64 * 1024
_GUESSED_DELIMITER = re.compile(
    rb"(?:^|(?<=\n))(--[\x21-\x7e]{1,200}?)[ \t]*\r?\nContent-[A-Za-z-]{1,40}:", re.I
)

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_WS = re.compile(r"[ \t\r\n\x0b\x0c]+")
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.I
)
_IDENTITY = frozenset({"", "7bit", "8bit", "binary", "7-bit", "8-bit"})
_UUENCODE = frozenset({"x-uuencode", "uuencode", "x-uue", "uue"})


@dataclass(slots=True)
class Bodies:
    """What the walk collects."""

    errors: list[str]
    text: str | None = None
    html: str | None = None
    attachments: list[AttachmentInfo] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    parts: int = 0
    parts_capped: bool = False


def first_field(fields: Fields, name: bytes) -> bytes | None:
    for key, value in fields:
        if len(key) == len(name) and key.lower() == name:
            return value
    return None


def walk(buf: bytes, fields: Fields, body: int, end: int, out: Bodies) -> None:
    """Read the entity whose header fields are ``fields`` and body ``buf[body:end]``."""
    _entity(buf, fields, body, end, 0, "", "text/plain", out)


def _entity(
    buf: bytes,
    fields: Fields,
    body: int,
    end: int,
    depth: int,
    path: str,
    default_type: str,
    out: Bodies,
) -> None:
    out.parts += 1
    errors = out.errors
    where = f"part {path or '1'}"
    ctype, params = _content_type(fields, default_type, errors, where)
    if ctype.startswith("multipart/"):
        boundary = params.get("boundary", "")
        if not boundary:
            errors.append(f"{where}: {ctype} without a boundary; read as text")
            ctype = "text/plain"
        elif depth >= MAX_DEPTH:
            errors.append(f"{where}: multiparts nested deeper than {MAX_DEPTH}; kept whole")
        elif _multipart(buf, body, end, depth, path, ctype, boundary, out):
            return
        else:
            ctype = "text/plain"
    _leaf(buf, fields, body, end, path or "1", ctype, params, out)


def _multipart(
    buf: bytes,
    body: int,
    end: int,
    depth: int,
    path: str,
    ctype: str,
    boundary: str,
    out: Bodies,
) -> bool:
    """Read the parts of a multipart body; False when no delimiter opens a part."""
    errors = out.errors
    where = f"part {path or '1'}"
    marker = _marker(buf, body, end, boundary, errors, where)
    if marker is None:
        errors.append(f"{where}: boundary of {ctype} not found; read as text")
        return False
    delims = _delimiters(buf, body, end, marker)
    if not delims or delims[0][2]:
        errors.append(f"{where}: no opening delimiter in {ctype}; read as text")
        return False
    child_type = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
    # For each delimiter, the index of the next close delimiter (len(delims): none).
    next_close = [len(delims)] * (len(delims) + 1)
    for k in range(len(delims) - 1, -1, -1):
        next_close[k] = k if delims[k][2] else next_close[k + 1]
    index = 0
    i = 0
    closed = False
    while i < len(delims):
        _, part_start, closing = delims[i]
        if closing:
            closed = True
            break
        i += 1
        if i < len(delims) and delims[i][0] == part_start and not delims[i][2]:
            continue  # adjacent delimiter lines make no empty part
        stop = _before_line_break(buf, part_start, delims[i][0]) if i < len(delims) else end
        if out.parts >= MAX_PARTS:
            if not out.parts_capped:
                errors.append(f"more than {MAX_PARTS} MIME parts; the rest skipped")
                out.parts_capped = True
            return True
        index += 1
        child = f"{path}.{index}" if path else str(index)
        child_fields, child_body = read_fields(buf, part_start, stop, errors, f"part {child}")
        if _same_boundary(child_fields, boundary, errors, where):
            # A nested multipart with its parent's boundary owns the delimiters up to
            # its close delimiter, as in the stdlib's feed parser.
            k = next_close[i]
            if k < len(delims):
                stop = delims[k][1]
                i = k + 1
        _entity(buf, child_fields, child_body, stop, depth + 1, child, child_type, out)
    if not closed:
        errors.append(f"{where}: close delimiter missing")
    return True


def _content_type(
    fields: Fields, default_type: str, errors: list[str], where: str
) -> tuple[str, dict[str, str]]:
    raw = first_field(fields, b"content-type")
    if raw is None:
        return default_type, {}
    value, params = parse_params(_structure_text(raw, errors, where), errors, where)
    value = "".join(value.split())
    if value.count("/") != 1 or value.startswith("/") or value.endswith("/"):
        if value:
            errors.append(f"{where}: invalid Content-Type {value[:60]!r}; read as text/plain")
        return "text/plain", params
    return value, params


def _structure_text(raw: bytes, errors: list[str], where: str) -> str:
    capped, cut = cap_raw(unfold(raw, STRUCTURE_HEADER_BYTES), STRUCTURE_HEADER_BYTES)
    if cut or len(raw) > 2 * STRUCTURE_HEADER_BYTES:
        errors.append(f"{where}: header longer than {STRUCTURE_HEADER_BYTES} bytes; cut")
    return text_of(capped, errors, where)


def _marker(
    buf: bytes, start: int, end: int, boundary: str, errors: list[str], where: str
) -> bytes | None:
    marker = b"--" + boundary.encode("utf-8", "surrogateescape")
    if buf.find(marker, start, end) >= 0:
        return marker
    if not boundary.isascii():
        marker = b"--" + boundary.encode("cp1252", "replace")
        if buf.find(marker, start, end) >= 0:
            return marker
    # The declared boundary never occurs: use the one the parts were written with, a
    # "--" line followed by a Content- header, if there is one.
    m = _GUESSED_DELIMITER.search(buf, start, min(end, start + _GUESS_WINDOW))
    if m is None:
        return None
    errors.append(f"{where}: declared boundary not in the body; used {m.group(1)[:70]!r}")
    return m.group(1)


def _same_boundary(fields: Fields, boundary: str, errors: list[str], where: str) -> bool:
    raw = first_field(fields, b"content-type")
    if raw is None or b"oundary" not in raw:
        return False
    ctype, params = parse_params(_structure_text(raw, errors, where), [], where)
    return ctype.startswith("multipart/") and params.get("boundary") == boundary


def _before_line_break(buf: bytes, start: int, at: int) -> int:
    """``at``, less the line break just before it (it belongs to the delimiter)."""
    if at > start and buf[at - 1] == 10:
        at -= 1
        if at > start and buf[at - 1] == 13:
            at -= 1
    elif at > start and buf[at - 1] == 13:
        at -= 1
    return at


def _delimiters(buf: bytes, start: int, end: int, marker: bytes) -> list[tuple[int, int, bool]]:
    """(start, end of line, is the close delimiter) of each delimiter line."""
    found: list[tuple[int, int, bool]] = []
    size = len(marker)
    misses = 0
    at = buf.find(marker, start, end)
    while at >= 0 and len(found) <= _MAX_DELIMITERS:
        if at == start or buf[at - 1] in (10, 13):
            j = at + size
            closing = buf.startswith(b"--", j, end)
            k = j + 2 if closing else j
            while k < end and buf[k] in (32, 9):
                k += 1
            if k >= end:
                found.append((at, end, closing))
            elif buf[k] == 10 or buf[k] == 13:
                found.append((at, k + (2 if buf.startswith(b"\r\n", k) else 1), closing))
            else:
                misses += 1
        else:
            misses += 1
        if misses > _FIND_LOOP_MISSES:
            # A body that repeats the marker where it is no delimiter: let a pattern
            # skip those in C from here on.
            escaped = re.escape(marker)
            pattern = re.compile(
                escaped + rb"(?<=[\r\n]" + escaped + rb")(--)?[ \t]*(\r\n|\r|\n|\Z)"
            )
            for m in pattern.finditer(buf, at + size, end):
                found.append((m.start(), m.end(), m.group(1) is not None))
                if len(found) > _MAX_DELIMITERS:
                    break
            break
        at = buf.find(marker, at + size, end)
    return found


def _leaf(
    buf: bytes,
    fields: Fields,
    body: int,
    end: int,
    path: str,
    ctype: str,
    params: dict[str, str],
    out: Bodies,
) -> None:
    errors = out.errors
    where = f"part {path}"
    disposition = ""
    dparams: dict[str, str] = {}
    raw = first_field(fields, b"content-disposition")
    if raw is not None:
        disposition, dparams = parse_params(_structure_text(raw, errors, where), errors, where)
    is_attachment = disposition == "attachment"
    if not is_attachment and ctype == "text/plain" and out.text is None:
        out.text = _text(buf, fields, body, end, params, False, errors, where)
        return
    if not is_attachment and ctype == "text/html" and out.html is None:
        out.html = _text(buf, fields, body, end, params, True, errors, where)
        return
    data = _payload(buf, fields, body, end, errors, where)
    content_id = ""
    raw = first_field(fields, b"content-id")
    if raw is not None:
        content_id = _collapse(_structure_text(raw, errors, where))
        if content_id.startswith("<") and content_id.endswith(">"):
            content_id = content_id[1:-1].strip()
        content_id = content_id[:CONTENT_ID_CHARS]
    filename = dparams.get("filename") or params.get("name") or ""
    if "=?" in filename:
        filename = decode_words(filename, errors, where)
    filename = _collapse(filename)[:FILENAME_CHARS]
    if disposition not in ("inline", "attachment"):
        disposition = "inline" if content_id and not disposition else "attachment"
    out.attachments.append(
        AttachmentInfo(
            id=path,
            filename=filename,
            content_type=ctype,
            size=len(data),
            content_id=content_id,
            disposition=disposition,
            sha256=hashlib.sha256(data).hexdigest(),
        )
    )
    out.data.append(data)


def _text(
    buf: bytes,
    fields: Fields,
    body: int,
    end: int,
    params: dict[str, str],
    is_html: bool,
    errors: list[str],
    where: str,
) -> str:
    data = _payload(buf, fields, body, end, errors, where)
    label: str | None = params.get("charset") or None
    if label is None and is_html and not data.isascii():
        m = _META_CHARSET.search(data, 0, 4096)
        if m is not None:
            label = m.group(1).decode("ascii")
    text = (
        _charset.decode(data, label, errors, where) if label else _undeclared(data, errors, where)
    )
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _undeclared(data: bytes, errors: list[str], where: str) -> str:
    # RFC 2045 says us-ascii; 8-bit bytes then are UTF-8 or windows-1252.
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _charset.decode(data, "us-ascii", errors, where)


def _payload(
    buf: bytes, fields: Fields, body: int, end: int, errors: list[str], where: str
) -> bytes:
    """The body with its Content-Transfer-Encoding undone."""
    data = buf[body:end]
    raw = first_field(fields, b"content-transfer-encoding")
    if raw is None:
        return data
    cte = _structure_text(raw, errors, where).split(";", 1)[0].strip(" \t\"'").lower()
    if cte in _IDENTITY:
        return data
    if cte == "base64":
        return _base64(data, errors, where)
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    if cte in _UUENCODE:
        return _uudecode(data, errors, where)
    errors.append(f"{where}: unknown Content-Transfer-Encoding {cte[:40]!r}; kept as is")
    return data


def _base64(data: bytes, errors: list[str], where: str) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        pass
    errors.append(f"{where}: malformed base64")
    clean = _B64_JUNK.sub(b"", data.split(b"=", 1)[0])
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    clean += b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return b""


def _uudecode(data: bytes, errors: list[str], where: str) -> bytes:
    lines = data.splitlines()
    out: list[bytes] = []
    started = False
    for line in lines:
        if not started:
            started = line.startswith(b"begin")
            continue
        if line.strip() == b"end":
            break
        if not line.strip():
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            size = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out.append(binascii.a2b_uu(line[:size]))
            except binascii.Error:
                errors.append(f"{where}: malformed uuencoded line")
    if not started:
        errors.append(f"{where}: no uuencoded data; kept as is")
        return data
    return b"".join(out)


def _collapse(text: str) -> str:
    return _WS.sub(" ", text).strip(" ")
