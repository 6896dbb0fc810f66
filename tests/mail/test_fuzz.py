"""Property: whatever the bytes, ``parse`` returns a valid result and no internal
failure. Two sources of bytes: MIME trees generated here (odd charsets, transfer
encodings, boundaries that lie, missing delimiters, 8-bit and encoded headers, mixed
line ends) and byte mutations of the corpus files. Derandomized, no example database:
every run tries the same examples (about 3,000 in all, some seconds)."""

from __future__ import annotations

import base64
import binascii
import quopri

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail import parse
from tests.mail.support import CORPUS_FILES, check_result

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CHARSETS = [
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "koi8-r",
    "gb2312",
    "shift_jis",
    "iso-2022-jp",
    "utf-16",
    "utf-7",
    "idna",
    "undefined",
    "base64",
    "x-unknown",
    "",
    "utf-8*en",
]
CTES = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
TYPES = ["text/plain", "text/html", "image/png", "application/pdf", "message/rfc822", "text", "/"]
EOLS = [b"\r\n", b"\n", b"\r"]

texts = st.text(max_size=60)
raw_bytes = st.binary(max_size=120)


@st.composite
def header_value(draw: st.DrawFn) -> bytes:
    """Plain, raw UTF-8 or 8-bit, or RFC 2047 words (valid or broken)."""
    text = draw(texts)
    kind = draw(st.sampled_from(["plain", "raw", "q", "b", "broken", "bytes"]))
    if kind == "bytes":
        return draw(raw_bytes).replace(b"\r", b"").replace(b"\n", b"")
    if kind == "broken":
        return b"=?" + draw(st.sampled_from(CHARSETS)).encode() + b"?" + text.encode()[:20]
    if kind in ("q", "b"):
        charset = draw(st.sampled_from(CHARSETS))
        data = text.encode("utf-8")
        payload = binascii.b2a_qp(data, header=True) if kind == "q" else base64.b64encode(data)
        return b"=?" + charset.encode() + b"?" + kind.encode() + b"?" + payload + b"?="
    return text.encode("utf-8", "surrogatepass")


@st.composite
def leaf(draw: st.DrawFn) -> list[bytes]:
    ctype = draw(st.sampled_from(TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    cte = draw(st.sampled_from(CTES))
    body = draw(st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass")), raw_bytes))
    if cte == "base64" and draw(st.booleans()):
        body = base64.encodebytes(body)
    elif cte == "quoted-printable" and draw(st.booleans()):
        body = quopri.encodestring(body)
    headers = [b"Content-Type: " + ctype.encode() + b"; charset=" + charset.encode()]
    if cte:
        headers.append(b"Content-Transfer-Encoding: " + cte.encode())
    if draw(st.booleans()):
        filename = draw(texts).encode("utf-8", "surrogatepass")
        style = draw(st.sampled_from(["quoted", "2231", "2047"]))
        if style == "2231":
            value = b"filename*=utf-8''" + b"".join(b"%%%02X" % c for c in filename)
        elif style == "2047":
            value = b'filename="=?utf-8?b?' + base64.b64encode(filename) + b'?="'
        else:
            value = b'filename="' + filename.replace(b'"', b'\\"') + b'"'
        disposition = draw(st.sampled_from([b"attachment", b"inline", b"bogus"]))
        headers.append(b"Content-Disposition: " + disposition + b"; " + value)
    if draw(st.booleans()):
        headers.append(b"Content-ID: <" + draw(texts).encode("utf-8", "surrogatepass") + b">")
    return [*headers, b"", body]


@st.composite
def entity(draw: st.DrawFn, depth: int = 0) -> list[bytes]:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(leaf())
    boundary = draw(st.sampled_from(["b", "b1", "----=_Part_1", "same", "x y", ""]))
    written = boundary if draw(st.integers(0, 5)) else draw(st.sampled_from(["other", "same"]))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest", "report"]))
    children = draw(st.lists(entity(depth + 1), max_size=4))
    lines = [
        b"Content-Type: multipart/" + subtype.encode() + b'; boundary="' + boundary.encode() + b'"',
        b"",
    ]
    if draw(st.booleans()):
        lines.append(b"preamble")
    for child in children:
        lines.append(b"--" + written.encode())
        lines.extend(child)
    if draw(st.booleans()):
        lines.append(b"--" + written.encode() + b"--")
        if draw(st.booleans()):
            lines.append(b"epilogue")
    return lines


@st.composite
def mime_mail(draw: st.DrawFn) -> bytes:
    names = [
        "Subject",
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "X-Any",
    ]
    headers = []
    for name in draw(st.lists(st.sampled_from(names), max_size=8)):
        value = draw(header_value())
        if name in ("From", "To", "Cc") and draw(st.booleans()):
            value = (
                value
                + b" <"
                + draw(st.sampled_from([b"a@x.org", b"b@xn--bcher-kva.example", b""]))
                + b">"
            )
        if draw(st.booleans()):  # folded
            value = value.replace(b" ", b"\r\n ", 1)
        headers.append(name.encode() + b": " + value)
    lines = headers + draw(entity())
    eol = draw(st.sampled_from(EOLS))
    if draw(st.integers(0, 4)) == 0:  # line ends mixed within one mail
        return b"".join(line + draw(st.sampled_from(EOLS)) for line in lines)
    return eol.join(lines)


@settings(FUZZ, max_examples=1500)
@given(mime_mail())
def test_generated_mime_parses_into_a_valid_result(raw: bytes) -> None:
    check_result(parse(raw))


_CORPUS = [p.read_bytes() for p in CORPUS_FILES if p.stat().st_size < 256 * 1024]


@st.composite
def mutated_corpus_file(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate", "line"]))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from([b"\r", b"\n", b"--", b"=?", b"?=", b'"', b"(", b"<", b"\xff"])
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[at:]
        else:
            data[at:at] = draw(raw_bytes) + b"\r\n"
    return bytes(data)


@settings(FUZZ, max_examples=1500)
@given(mutated_corpus_file())
def test_mutated_corpus_files_parse_into_a_valid_result(raw: bytes) -> None:
    check_result(parse(raw))
