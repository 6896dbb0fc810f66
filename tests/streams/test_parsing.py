from pathlib import Path

import pytest

from streams.parsing import PREVIEW_CHARS, summarise

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CORPUS_FILES = sorted(
    p for p in CORPUS.rglob("*") if p.is_file() and p.name not in {"LICENSE", "NOTICE", "README.md"}
)


def test_corpus_is_there() -> None:
    assert len(CORPUS_FILES) >= 170, f"expected the shared corpus beside the checkout at {CORPUS}"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_message_summarises_without_raising(path: Path) -> None:
    summary = summarise(path.read_bytes())
    assert len(summary.preview) <= PREVIEW_CHARS
    assert "\n" not in summary.subject and "\n" not in summary.preview
    assert all(isinstance(e, str) and e for e in summary.parse_errors)


def test_encoded_words_and_charsets_are_decoded() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.org>\r\n"
        b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus =?utf-8?b?S8O2bG4=?=\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Sch=F6ne   Gr=FC=DFe\r\n   und mehr\r\n"
    )
    s = summarise(raw)
    assert s.sender == "Jürgen Müller <j@example.org>"
    assert s.subject == "Grüße aus Köln"
    assert s.preview == "Schöne Grüße und mehr"
    assert s.parse_errors == ()


def test_html_only_mail_previews_text_without_script_or_style() -> None:
    raw = (
        b"Subject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{color:red}</style><script>alert(1)</script></head>"
        b"<body><p>Your code is <b>123456</b></p></body></html>"
    )
    assert summarise(raw).preview == "Your code is 123456"


def test_unknown_charset_and_garbage_do_not_raise() -> None:
    raw = (
        b"Subject: =?x-nonsense?q?abc?=\r\n"
        b"Content-Type: text/plain; charset=x-nonsense\r\n\r\n\xff\xfe ok"
    )
    s = summarise(raw)
    assert "ok" in s.preview
    assert summarise(b"").subject == ""
    assert summarise(b"\x00\x01\x02 not a mail at all").preview is not None


def test_broken_multipart_records_parse_errors() -> None:
    raw = (
        b"Subject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'
        b"--XYZ\r\nContent-Type: text/plain\r\n\r\nfirst part, never closed\r\n"
    )
    s = summarise(raw)
    assert s.preview == "first part, never closed"
    assert any("CloseBoundaryNotFoundDefect" in e for e in s.parse_errors)


def test_long_preview_is_clipped() -> None:
    raw = b"Subject: long\r\n\r\n" + b"word " * 1000
    preview = summarise(raw).preview
    assert len(preview) == PREVIEW_CHARS and preview.endswith("\u2026")
