"""Each field of ``mail.parse`` on hand-made mails."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from mail import PARSER_VERSION, ParsedResult, parse
from mail._parse import _usual_date
from schemas.mail import MailAddress
from tests.mail.support import check_result, message, multipart, part

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + b"\x00\xff" * 300 + b"%%EOF"


def parsed(raw: bytes) -> ParsedResult:
    result = parse(raw)
    check_result(result)
    return result


# -- the whole ---------------------------------------------------------------------


def test_a_nested_multipart_with_inline_images_and_an_attachment() -> None:
    html = '<html><body><p>Hi <img src="cid:logo@x"></p></body></html>'
    related = multipart(
        "rel",
        part("Content-Type: text/html; charset=utf-8", body=html),
        part(
            "Content-Type: image/png",
            "Content-Transfer-Encoding: base64",
            "Content-ID: <logo@x>",
            "Content-Disposition: inline; filename=logo.png",
            body=base64.encodebytes(PNG),
        ),
    )
    alternative = multipart(
        "alt",
        part("Content-Type: text/plain; charset=utf-8", body="Hi there\r\n"),
        part('Content-Type: multipart/related; boundary="rel"', body=related),
    )
    raw = message(
        "From: Ann <ann@example.com>",
        "To: bob@example.org",
        "Subject: Report",
        "Date: Tue, 03 Dec 2026 10:00:00 +0100",
        "Message-ID: <m1@example.com>",
        'Content-Type: multipart/mixed; boundary="mix"',
        body=multipart(
            "mix",
            part('Content-Type: multipart/alternative; boundary="alt"', body=alternative),
            part(
                'Content-Type: application/pdf; name="r.pdf"',
                "Content-Transfer-Encoding: base64",
                'Content-Disposition: attachment; filename="report.pdf"',
                body=base64.encodebytes(PDF),
            ),
        ),
    )
    result = parsed(raw)
    mail = result.mail
    assert mail.parser_version == PARSER_VERSION == 2
    assert (mail.from_name, mail.from_address, mail.has_attachments) == (
        "Ann",
        "ann@example.com",
        True,
    )
    assert mail.text == "Hi there\n"
    assert mail.html == html
    assert [a.id for a in mail.attachments] == ["1.2.2", "2"]
    logo, pdf = mail.attachments
    assert (logo.filename, logo.content_type, logo.content_id, logo.disposition) == (
        "logo.png",
        "image/png",
        "logo@x",
        "inline",
    )
    assert (pdf.filename, pdf.content_type, pdf.disposition) == (
        "report.pdf",
        "application/pdf",
        "attachment",
    )
    assert result.attachment_data == (PNG, PDF)
    assert logo.size == len(PNG) and logo.sha256 == hashlib.sha256(PNG).hexdigest()
    assert mail.cid_map == {"logo@x": "1.2.2"}
    assert mail.preview == "Hi there"
    assert mail.parse_errors == ()


def test_the_first_text_and_html_that_are_not_attachments_are_the_bodies() -> None:
    raw = message(
        "Content-Type: multipart/mixed; boundary=b",
        body=multipart(
            "b",
            part("Content-Type: text/plain", "Content-Disposition: attachment", body="notes"),
            part("Content-Type: text/plain", body="the body"),
            part("Content-Type: text/plain", body="a second text"),
            part("Content-Type: text/html", body="<p>html</p>"),
        ),
    )
    result = parsed(raw)
    assert result.mail.text == "the body"
    assert result.mail.html == "<p>html</p>"
    assert [(a.id, a.content_type) for a in result.mail.attachments] == [
        ("1", "text/plain"),
        ("3", "text/plain"),
    ]
    assert result.attachment_data == (b"notes", b"a second text")


def test_a_forwarded_message_is_an_attachment_not_a_body() -> None:
    inner = message("Subject: inner", body="inner text")
    raw = message(
        "Content-Type: multipart/mixed; boundary=b",
        body=multipart(
            "b",
            part("Content-Type: text/plain", body="see attached"),
            part("Content-Type: message/rfc822", body=inner),
        ),
    )
    result = parsed(raw)
    assert result.mail.text == "see attached"
    assert [a.content_type for a in result.mail.attachments] == ["message/rfc822"]
    assert result.attachment_data == (inner,)


def test_a_single_part_that_is_not_text_is_attachment_1() -> None:
    raw = message(
        "Content-Type: application/pdf",
        "Content-Transfer-Encoding: base64",
        body=base64.encodebytes(PDF),
    )
    result = parsed(raw)
    assert result.mail.text == "" and result.mail.preview == ""
    assert [a.id for a in result.mail.attachments] == ["1"]
    assert result.attachment_data == (PDF,)


def test_nothing_at_all() -> None:
    for raw in (b"", b"\r\n", b"\x00" * 10, b"no headers, just text"):
        mail = parsed(raw).mail
        assert mail.parser_version == PARSER_VERSION
        assert mail.subject == "" and mail.from_ == ()


def test_bytes_like_input() -> None:
    raw = message("Subject: hi", body="x")
    assert parse(bytearray(raw)).mail.subject == "hi"  # type: ignore[arg-type]
    assert parse(memoryview(raw)).mail.subject == "hi"  # type: ignore[arg-type]


# -- transfer encodings and charsets -----------------------------------------------


def test_quoted_printable_and_base64_bodies() -> None:
    qp = message(
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        body=b"Sch=F6ne Gr=FC=DFe, a soft=\r\n break and =3D\r\n",
    )
    assert parsed(qp).mail.text == "Schöne Grüße, a soft break and =\n"
    b64 = message(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: BASE64",
        body=base64.encodebytes("Grüße aus Köln".encode()),
    )
    assert parsed(b64).mail.text == "Grüße aus Köln"


def test_base64_without_padding_or_with_junk() -> None:
    unpadded = message("Content-Transfer-Encoding: base64", body=b"aGVsbG8gd29ybGQ")
    assert parsed(unpadded).mail.text == "hello world"
    junk = message("Content-Transfer-Encoding: base64", body=b"aGVs bG8g*!d29y\r\nbGQ=\r\n")
    assert parsed(junk).mail.text == "hello world"


def test_uuencoded_body() -> None:
    raw = message(
        "Content-Type: application/octet-stream",
        "Content-Transfer-Encoding: x-uuencode",
        body=b"begin 644 hi.txt\r\n%:&5L;&\\*\r\n`\r\nend\r\n",
    )
    assert parsed(raw).attachment_data == (b"hello",)


def test_an_unknown_transfer_encoding_keeps_the_bytes() -> None:
    raw = message("Content-Transfer-Encoding: 7-bit", body="plain")
    assert parsed(raw).mail.text == "plain"
    raw = message("Content-Transfer-Encoding: x-spam", body="plain")
    result = parsed(raw)
    assert result.mail.text == "plain"
    assert any("x-spam" in e for e in result.mail.parse_errors)


@pytest.mark.parametrize(
    ("charset", "payload", "text"),
    [
        ("us-ascii", "café €".encode(), "café €"),  # a lie: UTF-8
        ("us-ascii", "café".encode("cp1252"), "café"),  # a lie: windows-1252
        (
            "utf-8",
            "naïve \u2013 \u201cquotes\u201d".encode("cp1252"),
            "naïve \u2013 \u201cquotes\u201d",
        ),
        ("iso-8859-1", "Grüße".encode("latin-1"), "Grüße"),
        ("gb2312", "镕".encode("gb18030"), "镕"),  # GBK beyond GB2312
        ("x-made-up", "Grüße".encode(), "Grüße"),
        ("idna", "Grüße".encode(), "Grüße"),
        ("undefined", "Grüße".encode(), "Grüße"),
        ("base64", b"aGk=", "aGk="),
        ("utf-7", b"+2AA-x", "\ufffdx"),  # a lone surrogate, which JSON cannot carry
        ('"UTF-8"', "ä".encode(), "ä"),
        ("ks_c_5601-1987", "한국".encode("cp949"), "한국"),
        ("windows-874", "ก".encode("cp874"), "ก"),
    ],
)
def test_charsets_never_raise_and_fall_back(charset: str, payload: bytes, text: str) -> None:
    raw = message(f"Content-Type: text/plain; charset={charset}", body=payload)
    assert parsed(raw).mail.text == text


def test_undeclared_8bit_text_and_html_meta_charset() -> None:
    assert parsed(message(body="Grüße".encode())).mail.text == "Grüße"
    assert parsed(message(body="Grüße".encode("cp1252"))).mail.text == "Grüße"
    html = '<meta charset="koi8-r"><p>Привет</p>'.encode("koi8-r")
    raw = message("Content-Type: text/html", body=html)
    assert parsed(raw).mail.html == '<meta charset="koi8-r"><p>Привет</p>'


def test_text_line_ends_become_newlines() -> None:
    raw = message(body=b"a\r\nb\rc\nd")
    assert parsed(raw).mail.text == "a\nb\nc\nd"


# -- structure ---------------------------------------------------------------------


def test_a_missing_close_delimiter_keeps_the_last_part() -> None:
    raw = message(
        "Content-Type: multipart/alternative; boundary=b",
        body=multipart(
            "b",
            part("Content-Type: text/plain", body="text"),
            part("Content-Type: text/html", body="<b>html</b>"),
            close=False,
        ),
    )
    result = parsed(raw)
    assert (result.mail.text, result.mail.html) == ("text", "<b>html</b>\n")
    assert "part 1: close delimiter missing" in result.mail.parse_errors


def test_a_multipart_without_boundary_or_delimiters_is_read_as_text() -> None:
    for ctype in ("multipart/mixed", "multipart/mixed; boundary=nowhere"):
        result = parsed(message(f"Content-Type: {ctype}", body="just text"))
        assert result.mail.text == "just text"
        assert result.mail.parse_errors


def test_parts_written_with_another_boundary_than_declared() -> None:
    raw = message(
        "Content-Type: multipart/alternative; boundary=declared",
        body=multipart("actual", part("Content-Type: text/html", body="<p>found</p>")),
    )
    result = parsed(raw)
    assert result.mail.html == "<p>found</p>"
    assert any("declared boundary not in the body" in e for e in result.mail.parse_errors)


def test_a_nested_multipart_with_its_parents_boundary() -> None:
    # As the stdlib reads it: the inner multipart owns the delimiters up to its close.
    raw = message(
        "Content-Type: multipart/mixed; boundary=same",
        body=(
            b"--same\r\nContent-Type: multipart/alternative; boundary=same\r\n\r\n"
            b"--same\r\nContent-Type: text/plain\r\n\r\ntext\r\n"
            b"--same\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
            b"--same--\r\n"
            b"--same\r\nContent-Type: application/zip\r\n\r\nPK\r\n"
            b"--same--\r\n"
        ),
    )
    result = parsed(raw)
    assert (result.mail.text, result.mail.html) == ("text", "<p>html</p>")
    assert [a.content_type for a in result.mail.attachments] == ["application/zip"]
    assert result.attachment_data == (b"PK",)


def test_delimiter_lines_as_the_stdlib_reads_them() -> None:
    body = (
        b"--b \t\r\n"  # trailing white space is allowed
        b"Content-Type: text/plain\r\n\r\none\r\n--bX\r\nnot a delimiter\r\n"
        b"--b\r\n--b\r\n"  # adjacent delimiters make no empty part
        b"Content-Type: text/html\r\n\r\ntwo\r\n"
        b"--b--\r\nepilogue\r\n--b\r\nContent-Type: text/plain\r\n\r\nafter the close\r\n"
    )
    result = parsed(message("Content-Type: multipart/mixed; boundary=b", body=body))
    assert result.mail.text == "one\n--bX\nnot a delimiter"
    assert result.mail.html == "two"
    assert result.mail.attachments == ()


def test_lf_only_and_bare_cr_mails() -> None:
    for eol in (b"\n", b"\r"):
        raw = message(
            "Subject: line ends",
            "Content-Type: multipart/alternative; boundary=b",
            eol=eol,
            body=multipart(
                "b",
                part("Content-Type: text/plain", body="text", eol=eol),
                part("Content-Type: text/html", body="<i>html</i>", eol=eol),
                eol=eol,
            ),
        )
        mail = parsed(raw).mail
        assert (mail.subject, mail.text, mail.html) == ("line ends", "text", "<i>html</i>")


def test_digest_parts_default_to_messages() -> None:
    raw = message(
        "Content-Type: multipart/digest; boundary=d",
        body=multipart("d", part("Subject: one", body="first")),
    )
    result = parsed(raw)
    assert [a.content_type for a in result.mail.attachments] == ["message/rfc822"]


def test_the_header_block_ends_where_the_stdlib_ends_it() -> None:
    raw = b"From mbox-line Tue Dec 3\r\nSubject: kept\r\nnot a header line\r\nTo: body@x\r\n"
    mail = parsed(raw).mail
    assert mail.subject == "kept" and mail.to == ()
    assert mail.text == "not a header line\nTo: body@x\n"
    assert "headers: header block not ended by a blank line" in mail.parse_errors


# -- headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_subject", "subject"),
    [
        (b"=?utf-8?q?caf=C3=A9?=", "café"),
        (b"=?UTF-8?B?Q2Fmw6k=?= au lait", "Café au lait"),
        (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # white space between words dropped
        (b"=?utf-8?q?a?=\r\n =?iso-8859-1?q?=E4?=", "aä"),
        (b"=?utf-8?q?=C3?= =?utf-8?q?=A4?=", "ä"),  # one character split over two words
        (b"x=?utf-8?q?y?=z", "xyz"),  # no white space around the word
        (b"=?iso-8859-1?q?=E4?= caf\xc3\xa9 =?utf-8?q?x?=", "ä café x"),  # words and 8-bit
        ("Säying Hello — RFC 6532".encode(), "Säying Hello — RFC 6532"),
        ("caf\xe9".encode("latin-1"), "café"),  # 8-bit that is no UTF-8: windows-1252
        (b"=?utf-8?q?bad?b?=", "=?utf-8?q?bad?b?="),  # not an encoded word
        (b"=?x-unknown?q?caf=C3=A9?=", "café"),
        (b"=?utf-8*en?q?lang?=", "lang"),
        (b"  folded\r\n\tover   lines  ", "folded over lines"),
        (b"=?utf-8?b?w6Q?=", "ä"),  # base64 without padding
    ],
)
def test_subject(raw_subject: bytes, subject: str) -> None:
    raw = b"Subject: " + raw_subject + b"\r\n\r\n"
    assert parsed(raw).mail.subject == subject


@pytest.mark.parametrize(
    ("raw_from", "addresses", "sender"),
    [
        (b"ann@example.com", [("", "ann@example.com")], "ann@example.com"),
        (
            b"Ann Lee <ann@example.com>",
            [("Ann Lee", "ann@example.com")],
            "Ann Lee <ann@example.com>",
        ),
        (
            b'"Lee, Ann" <ann@example.com>',
            [("Lee, Ann", "ann@example.com")],
            "Lee, Ann <ann@example.com>",
        ),
        (
            b"=?utf-8?q?J=C3=BCrgen?= <j@example.org>, b@x.org",
            [("Jürgen", "j@example.org"), ("", "b@x.org")],
            "Jürgen <j@example.org>, b@x.org",
        ),
        (
            b"=?utf-8?b?TXlTdXJ2ZXk=?=\r\n =?utf-8?b?LmNvbQ==?= <s@x.com>",
            [("MySurvey.com", "s@x.com")],
            None,
        ),
        ("Jöhn Doe <jdöe@mächine.example>".encode(), [("Jöhn Doe", "jdöe@mächine.example")], None),
        (
            b"Pete(A \\) chap) <pete(his account)@silly.test(host)>",
            [("Pete", "pete@silly.test")],
            None,
        ),
        (b"x@xn--bcher-kva.example", [("", "x@bücher.example")], None),
        (b'"a b"@example.com', [("", '"a b"@example.com')], None),
        (
            b"Team: a@x.com, B <b@x.com>;, c@x.com",
            [("", "a@x.com"), ("B", "b@x.com"), ("", "c@x.com")],
            None,
        ),
        (b"undisclosed-recipients:;", [], ""),
        (b"<@relay.example:ann@example.com>", [("", "ann@example.com")], None),
        (b"ann@example.com <ann@example.com>", [("ann@example.com", "ann@example.com")], None),
        (b'"=?utf-8?q?J=C3=BC?=" <j@x.org>', [("Jü", "j@x.org")], None),
        (b"Mr. Smith <s@x.org>", [("Mr. Smith", "s@x.org")], None),
        (b"root", [("", "root")], "root"),
        (b"John Doe", [("John Doe", "")], "John Doe"),
        (b"<>", [], ""),
    ],
)
def test_addresses_and_sender(
    raw_from: bytes, addresses: list[tuple[str, str]], sender: str | None
) -> None:
    mail = parsed(b"From: " + raw_from + b"\r\nTo: " + raw_from + b"\r\n\r\n").mail
    assert [(a.name, a.address) for a in mail.from_] == addresses
    assert mail.to == mail.from_
    if sender is not None:
        assert mail.sender == sender


def test_cc_and_reply_to() -> None:
    raw = message("Cc: a@x.org, B <b@x.org>", "Reply-To: =?utf-8?q?R=C3=A9?= <r@x.org>")
    mail = parsed(raw).mail
    assert mail.cc == (MailAddress(address="a@x.org"), MailAddress(name="B", address="b@x.org"))
    assert mail.reply_to == (MailAddress(name="Ré", address="r@x.org"),)


def test_the_first_of_repeated_headers_wins() -> None:
    mail = parsed(message("Subject: first", "Subject: second", "From: a@x", "From: b@x")).mail
    assert mail.subject == "first" and mail.sender == "a@x"
    assert [v for n, v in mail.headers if n == "Subject"] == ["first", "second"]
    mail = parsed(message("Subject: plain", "Subject: =?utf-8?q?encoded?=")).mail
    assert mail.subject == "plain"
    mail = parsed(message("Subject: =?utf-8?q?encoded?=", "Subject: plain")).mail
    assert mail.subject == "encoded"


@pytest.mark.parametrize(
    ("raw_date", "expected"),
    [
        (
            "Tue, 03 Dec 2026 10:00:00 +0100",
            datetime(2026, 12, 3, 10, tzinfo=timezone(timedelta(hours=1))),
        ),
        (
            "3 Dec 2026 10:00 -0530",
            datetime(2026, 12, 3, 10, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
        ("Tue, 03 Dec 2026 10:00:00 -0000", datetime(2026, 12, 3, 10, tzinfo=UTC)),
        ("Tue, 03 Dec 2026 10:00:00 GMT", datetime(2026, 12, 3, 10, tzinfo=UTC)),
        (
            "Tue, 3 Dec 26 10:00:00 EST",
            datetime(2026, 12, 3, 10, tzinfo=timezone(-timedelta(hours=5))),
        ),
        ("Tue, 03 Dec 2026 10:00:00 +0000 (UTC)", datetime(2026, 12, 3, 10, tzinfo=UTC)),
        ("not a date", None),
        ("Tue, 31 Feb 2026 10:00:00 +0000", None),
        ("Tue, 03 Dec 2026 10:00:00 +2400", None),
        ("", None),
    ],
)
def test_date(raw_date: str, expected: datetime | None) -> None:
    mail = parsed(message(f"Date: {raw_date}")).mail
    assert mail.date == expected
    if expected is not None:
        assert mail.date is not None and mail.date.utcoffset() == expected.utcoffset()
    elif raw_date:
        assert any(e.startswith("Date: unreadable") for e in mail.parse_errors)


@pytest.mark.parametrize(
    "text",
    [
        "Tue, 03 Dec 2026 10:00:00 +0100",
        "Mon, 1 Jan 2024 00:00:00 -0000",
        "29 Feb 2024 23:59:59 +1400",
        "Sun, 07 Feb 2010 14:02:38 -0800",
        "Fri, 19 Aug 2011 10:47 +0900",
        "Tue, 04 Dec 2001 17:11:25 -0459",
        "Wed, 15 Dec 2010 12:21:20 +0099",
        "Thu, 13 Feb 1969 23:32:54 -0330 (NST)",
    ],
)
def test_the_date_fast_path_agrees_with_email_utils(text: str) -> None:
    fast = _usual_date(text)
    slow = parsedate_to_datetime(text)
    if slow.tzinfo is None:
        slow = slow.replace(tzinfo=UTC)
    assert fast == slow and fast is not None and fast.utcoffset() == slow.utcoffset()


def test_message_id() -> None:
    assert parsed(message("Message-ID:  <a@b>  ")).mail.message_id_header == "<a@b>"
    assert parsed(message("Message-ID: <a\n @b>")).mail.message_id_header == "<a @b>"
    assert parsed(message("Subject: none")).mail.message_id_header == ""


def test_the_header_list() -> None:
    raw = message(
        "Received: from a\n\tby b",
        "X-Note: =?utf-8?q?caf=C3=A9?=",
        "x-lower-case: Kept As Written",
        "Subject: " + "long " * 2000,
    )
    mail = parsed(raw).mail
    names = [n for n, _ in mail.headers]
    assert names == ["Received", "X-Note", "x-lower-case", "Subject"]
    assert mail.headers[0] == ("Received", "from a\tby b")
    assert mail.headers[1] == ("X-Note", "café")
    assert len(mail.headers[3][1]) == 4096
    assert "Subject: value longer than 4096 characters; cut" in mail.parse_errors


def test_the_header_list_is_capped_at_200() -> None:
    raw = message(*(f"X-H{i}: {i}" for i in range(250)))
    mail = parsed(raw).mail
    assert len(mail.headers) == 200 and mail.headers[-1] == ("X-H199", "199")
    assert "headers: 250 fields; only the first 200 listed" in mail.parse_errors


@pytest.mark.parametrize(
    ("disposition", "ctype", "filename"),
    [
        ("attachment; filename*=utf-8''%E2%82%AC%20rates.pdf", "application/pdf", "€ rates.pdf"),
        (
            "attachment; filename*0*=iso-8859-1''Gr%FC; filename*1=\"ss \"; filename*2*=%FC.txt",
            "text/plain",
            "Grüss ü.txt",
        ),
        ('attachment; filename="=?UTF-8?B?0YTQsNC50LsucGRm?="', "application/pdf", "файл.pdf"),
        ('attachment; filename="say \\"hi\\".txt"', "text/plain", 'say "hi".txt'),
        ("attachment", 'application/pdf; name="=?iso-8859-1?q?r=E9sum=E9.pdf?="', "résumé.pdf"),
        ("attachment; filename=plain name.txt", "text/plain", "plain name.txt"),
        ('attachment; FILENAME="caps.txt"', "text/plain", "caps.txt"),
        ('attachment; filename="Grüße.txt"', "text/plain", "Grüße.txt"),  # raw UTF-8
    ],
)
def test_attachment_filenames(disposition: str, ctype: str, filename: str) -> None:
    raw = message(
        "Content-Type: multipart/mixed; boundary=b",
        body=multipart(
            "b",
            part("Content-Type: text/plain", body="body"),
            part(f"Content-Type: {ctype}", f"Content-Disposition: {disposition}", body="data"),
        ),
    )
    (info,) = parsed(raw).mail.attachments
    assert info.filename == filename
    assert info.content_type == ctype.split(";")[0]


def test_disposition_and_content_id_defaults() -> None:
    raw = message(
        "Content-Type: multipart/related; boundary=b",
        body=multipart(
            "b",
            part("Content-Type: text/html", body='<img src="cid:a">'),
            part("Content-Type: image/gif", "Content-ID: < a >", body="GIF89a"),
            part("Content-Type: image/gif", body="GIF89a"),
            part(
                "Content-Type: image/gif",
                "Content-ID: <b>",
                "Content-Disposition: attachment",
                body="x",
            ),
        ),
    )
    mail = parsed(raw).mail
    assert [(a.content_id, a.disposition) for a in mail.attachments] == [
        ("a", "inline"),
        ("", "attachment"),
        ("b", "attachment"),
    ]
    assert mail.cid_map == {"a": "2", "b": "4"}


def test_list_unsubscribe() -> None:
    raw = message(
        "List-Unsubscribe: <mailto:u@x.com?subject=unsub>,\n <https://x.com/u?\n id=1>, "
        "<javascript:alert(1)>, <https://x.com/u?id=1>",
    )
    mail = parsed(raw).mail
    assert mail.list_unsubscribe == ("mailto:u@x.com?subject=unsub", "https://x.com/u?id=1")
    assert any("javascript" in e for e in mail.parse_errors)


# -- the preview -------------------------------------------------------------------


def test_preview_from_text_collapses_white_space_and_is_clipped() -> None:
    words = " ".join(f"word{i}" for i in range(100))
    mail = parsed(message(body=f"  Hello\r\n\r\n\tthere   \u200b{words}")).mail
    assert mail.preview.startswith("Hello there word0 word1")
    assert len(mail.preview) == 200 and mail.preview.endswith("…")


def test_preview_from_html_when_there_is_no_text() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style>"
        "<script>var x = '<p>no</p>';</script></head><body><!-- hidden -->"
        "<p>Caf&eacute; &amp; <b>b</b>old</p><div>next&nbsp;line</div><br>end"
        "<![if !mso]>x<![endif]></body></html>"
    )
    raw = message(
        "Content-Type: multipart/alternative; boundary=b",
        body=multipart(
            "b",
            part("Content-Type: text/plain", body="  \r\n "),
            part("Content-Type: text/html", body=html),
        ),
    )
    # A comment, or a declaration like <![if]>, separates no words.
    assert parsed(raw).mail.preview == "Café & bold next line endx"


def test_preview_of_unclosed_markup() -> None:
    assert parsed(message("Content-Type: text/html", body="text <a href=")).mail.preview == "text"
    assert parsed(message("Content-Type: text/html", body="a <!-- b")).mail.preview == "a"
    assert parsed(message("Content-Type: text/html", body="1 < 2 <3")).mail.preview == "1 < 2 <3"


def test_the_summary_names_the_first_sender_and_ignores_inline_parts() -> None:
    inline_only = message(
        "From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>, other@example.com",
        'Content-Type: multipart/related; boundary="rel"',
        body=multipart(
            "rel",
            part("Content-Type: text/html", body='<img src="cid:a@x">'),
            part("Content-Type: image/png", "Content-ID: <a@x>", body="png"),
        ),
    )
    mail = parsed(inline_only).mail
    assert (mail.from_name, mail.from_address, mail.has_attachments) == (
        "Zoë",
        "zoe@example.com",
        False,
    )
    nobody = parsed(message("Subject: x", body="hi")).mail
    assert (nobody.from_name, nobody.from_address, nobody.has_attachments) == ("", "", False)
