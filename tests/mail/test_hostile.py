"""Input made to be expensive: each parses in well under a second, without raising,
into a valid result that notes what was cut."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest

from mail import parse
from schemas.mail import ParsedMail
from tests.mail.support import check_result

#: The bound every input must stay under; measured worst is about 0.15 s.
SECONDS = 1.0
MIB = 1024 * 1024


def _mime(headers: bytes, body: bytes) -> bytes:
    return b"From: a@example.com\r\nSubject: hostile\r\n" + headers + b"\r\n" + body


def _nested(depth: int, leaf: bytes) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="level%d"\r\n\r\n--level%d\r\n' % (i, i)
        for i in range(depth)
    )
    return b"From: a@example.com\r\n" + opening + leaf


def _parts(count: int) -> bytes:
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count))
    return _mime(b"Content-Type: multipart/mixed; boundary=b\r\n", body + b"--b--\r\n")


CASES: dict[str, Callable[[], bytes]] = {
    "128 KiB of unclosed <a": lambda: _mime(b"Content-Type: text/html\r\n", b"<a" * 65536),
    "256 KiB of nested <div>": lambda: _mime(b"Content-Type: text/html\r\n", b"<div>" * 52000),
    "10 MiB of tags and no text": lambda: _mime(
        b"Content-Type: text/html\r\n", b"<p></p>" * (10 * MIB // 7)
    ),
    "an unclosed HTML comment": lambda: _mime(
        b"Content-Type: text/html\r\n", b"<!--" + b"x" * 5 * MIB
    ),
    "a 10 MiB folded Subject": lambda: (
        b"Subject: " + b"word \r\n " * (10 * MIB // 8) + b"\r\n\r\nbody"
    ),
    "a 10 MiB Subject folded every 2 bytes": lambda: (
        b"Subject: a" + b"\n " * (5 * MIB) + b"\n\nbody"
    ),
    "a 10 MiB Subject of encoded words": lambda: (
        b"Subject: " + b"=?utf-8?q?=C3=A4?=\r\n " * (10 * MIB // 20) + b"\r\n\r\nbody"
    ),
    "a 10 MiB one-line Subject": lambda: b"Subject: " + b"x" * (10 * MIB) + b"\r\n\r\nbody",
    "multiparts nested 5000 deep": lambda: _nested(5000, b"Content-Type: text/plain\r\n\r\nhi\r\n"),
    "60 levels over a 7 MB attachment": lambda: _nested(
        60,
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"\x00" * 7_000_000),
    ),
    "5000 nested parts of one boundary": lambda: (
        b"From: a@example.com\r\n"
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n' * 5000
        + b"\r\nhi\r\n"
    ),
    "10k parts": lambda: _parts(10_000),
    "100k empty parts": lambda: _mime(
        b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n\r\n" * 100_000
    ),
    "a million near-miss delimiters": lambda: _mime(
        b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n" + b"x--b\r\n--bX\r\n" * 500_000
    ),
    "a 30 MB base64 attachment": lambda: _mime(
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"\x00\x01" * (15 * MIB))
        + b"--b--\r\n",
    ),
    "12 MB of broken base64": lambda: _mime(
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n",
        b"A=B*" * 3_000_000,
    ),
    "a 9 MB uuencoded attachment": lambda: _mime(
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n",
        b"begin 644 f\r\n" + (b"M" + b"A" * 60 + b"\r\n") * 150_000 + b"end\r\n",
    ),
    "charset=idna": lambda: _mime(
        b"Content-Type: text/plain; charset=idna\r\n", b"\xff\xfe caf\xc3\xa9 xn--" * 100_000
    ),
    "charset=undefined": lambda: _mime(
        b"Content-Type: text/plain; charset=undefined\r\n", b"\xff hello" * 100_000
    ),
    "charset=idna in encoded words": lambda: b"Subject: " + b"=?idna?q?=FF?= " * 2000 + b"\r\n\r\n",
    "300k header fields": lambda: (
        b"".join(b"X-H%d: v\r\n" % i for i in range(300_000)) + b"\r\nbody"
    ),
    "To with 100k addresses": lambda: b"To: " + b"a@b.c, " * 100_000 + b"\r\n\r\nbody",
    "To of 100k unclosed angle brackets": lambda: b"To: " + b"<a, " * 100_000 + b"\r\n\r\n",
    "To of 500k nested comments": lambda: b"To: " + b"(" * 500_000 + b"\r\n\r\nbody",
    "From of unterminated quotes": lambda: b"From: " + b'"a\\' * 300_000 + b"\r\n\r\nbody",
    "100k MIME parameters": lambda: _mime(
        b"Content-Type: text/plain; " + b"a=b; " * 100_000 + b"\r\n", b"x"
    ),
    "5000 RFC 2231 sections": lambda: _mime(
        b"Content-Type: application/x; "
        + b"".join(b"name*%d*=%%41; " % i for i in range(5000))
        + b"\r\n",
        b"x",
    ),
    "a million encoded words": lambda: b"Subject: " + b"=?x?q?a?=" * 1_000_000 + b"\r\n\r\nb",
    "a million bare CRs": lambda: b"Subject: hi\rFrom: a@b\r\rbody\r" + b"x\r" * 1_000_000,
    "a 10 MiB folded Content-Type in a part": lambda: _mime(
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"--b\r\nContent-Type: text/plain;\r\n"
        + b" a=b;\r\n" * (10 * MIB // 8)
        + b"\r\nx\r\n--b--\r\n",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_is_bounded(name: str) -> None:
    raw = CASES[name]()
    start = time.perf_counter()
    result = parse(raw)
    elapsed = time.perf_counter() - start
    check_result(result)
    assert elapsed < SECONDS, f"{name}: {elapsed:.2f} s"


def test_what_is_cut_is_noted() -> None:
    mail = parse(CASES["10k parts"]()).mail
    assert "more than 500 MIME parts; the rest skipped" in mail.parse_errors
    assert len(mail.attachments) == 498  # 500 parts less the multipart and the text body

    mail = parse(CASES["multiparts nested 5000 deep"]()).mail
    assert any("nested deeper than 50" in e for e in mail.parse_errors)

    mail = parse(CASES["a 10 MiB folded Subject"]()).mail
    assert len(mail.subject) == 4096 and mail.subject.startswith("word word")
    assert "Subject: longer than 32768 bytes; cut" in mail.parse_errors

    mail = parse(CASES["300k header fields"]()).mail
    assert len(mail.headers) == 200
    assert any("more than 1000 header fields" in e for e in mail.parse_errors)

    mail = parse(CASES["To with 100k addresses"]()).mail
    assert len(mail.to) == 100


def test_a_bug_inside_becomes_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import mail._parse

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(mail._parse, "read_fields", broken)
    result = parse(b"Subject: x\r\n\r\n")
    assert result.mail.parse_errors == ("parser failure: RuntimeError: boom",)
    assert ParsedMail.model_validate(result.mail.model_dump(by_alias=True)) == result.mail
