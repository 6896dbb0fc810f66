"""Shared by the tests of ``mail/``: the corpus, a small MIME writer, and the checks
every parse result must pass."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mail import ParsedResult
from schemas.mail import ParsedMail

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CORPUS_SKIPPED = {"LICENSE", "NOTICE", "README.md", ".gitattributes"}
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in CORPUS_SKIPPED)


def corpus_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def message(*headers: str, body: bytes | str = b"", eol: bytes = b"\r\n") -> bytes:
    """A mail from header lines ("Name: value", folded lines as "\\n ") and a body."""
    head = b"".join(h.replace("\n", eol.decode()).encode("utf-8") + eol for h in headers)
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + eol + data


def multipart(boundary: str, *parts: bytes, close: bool = True, eol: bytes = b"\r\n") -> bytes:
    """The body of a multipart: each part is its header lines, a blank line, a body."""
    delimiter = b"--" + boundary.encode()
    out = b"preamble" + eol
    for part in parts:
        out += delimiter + eol + part + eol
    if close:
        out += delimiter + b"--" + eol + b"epilogue" + eol
    return out


def part(*headers: str, body: bytes | str = b"", eol: bytes = b"\r\n") -> bytes:
    head = eol.join(h.encode("utf-8") for h in headers)
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + eol + eol + data


def check_result(result: ParsedResult) -> ParsedMail:
    """What holds for every parse: no internal failure, a valid model that survives
    JSON, attachment bytes that match their listing, and the documented bounds."""
    mail = result.mail
    assert not any(e.startswith("parser failure") for e in mail.parse_errors), mail.parse_errors
    assert ParsedMail.model_validate_json(mail.model_dump_json(by_alias=True)) == mail
    assert len(result.attachment_data) == len(mail.attachments)
    ids = [a.id for a in mail.attachments]
    assert len(set(ids)) == len(ids)
    for info, data in zip(mail.attachments, result.attachment_data, strict=True):
        assert info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.disposition in ("inline", "attachment")
    assert set(mail.cid_map.values()) <= set(ids)
    assert len(mail.preview) <= 200
    for one_line in (mail.subject, mail.sender, mail.preview, mail.message_id_header):
        assert "\n" not in one_line and "\r" not in one_line
    assert len(mail.subject) <= 4096 and len(mail.sender) <= 4096
    assert len(mail.headers) <= 200
    assert all(len(value) <= 4096 for _, value in mail.headers)
    assert len(mail.parse_errors) <= 50
    assert mail.date is None or mail.date.tzinfo is not None
    return mail
