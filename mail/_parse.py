"""``parse``: the raw bytes of one mail in, :class:`schemas.mail.ParsedMail` out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from mail import _mime
from mail._address import parse_addresses
from mail._header import Fields, cap_raw, decode_value, read_fields, text_of, unfold
from mail._html_text import html_to_text
from schemas.mail import MailAddress, ParsedMail

#: Bumped whenever the parser reads the same bytes differently, so that stored mail
#: can be told apart and re-parsed. Version 2: ``from_name``, ``from_address`` and
#: ``has_attachments`` in the summary.
PARSER_VERSION = 2

PREVIEW_CHARS = 200
#: Characters of the HTML body scanned for a preview.
PREVIEW_SOURCE_CHARS = 256 * 1024
#: Decoded characters kept of a header value (the header list, subject, sender).
HEADER_VALUE_CHARS = 4096
#: Raw bytes of one header value read before decoding (an encoded word takes up to
#: about eight raw bytes per character).
HEADER_RAW_BYTES = 8 * HEADER_VALUE_CHARS
#: Header fields listed in ParsedMail.headers.
MAX_HEADERS = 200
MESSAGE_ID_CHARS = 998
DATE_RAW_BYTES = 256
MAX_UNSUBSCRIBE_URLS = 10
URL_CHARS = 2048
MAX_ERRORS = 50
ERROR_CHARS = 300

_WS = re.compile(r"[ \t\r\n\x0b\x0c]+")
_INVISIBLE = re.compile("[\u00ad\u034f\u200b-\u200f\u2060\ufeff]")
_ANGLE_ITEM = re.compile(r"<([^<>]*)>")
_UNSUBSCRIBE_SCHEMES = ("http://", "https://", "mailto:")
_NAMES = {
    name.encode(): name
    for name in (
        "Received From To Cc Subject Date Message-ID MIME-Version Content-Type "
        "Content-Transfer-Encoding Return-Path Reply-To DKIM-Signature List-Unsubscribe"
    ).split()
}
#: The usual date, ``[Tue, ]3 Dec 2026 10:00[:00] +0100``: read into the tuple that
#: ``email.utils`` would make, without its general (and slower) scan.
_DATE = re.compile(
    r"(?:[A-Za-z]{3},[ \t]*)?(\d{1,2})[ \t]+([A-Za-z]{3})[ \t]+(\d{4})[ \t]+"
    r"(\d{2}):(\d{2})(?::(\d{2}))?[ \t]+([+-])(\d{2})(\d{2})(?:[ \t]+\([A-Za-z ]{1,20}\))?\Z"
)
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}


@dataclass(frozen=True, slots=True)
class ParsedResult:
    """The parsed mail, and the decoded bytes of each of ``mail.attachments`` (in the
    same order), which the store keeps apart from the message document."""

    mail: ParsedMail
    attachment_data: tuple[bytes, ...] = ()


def parse(raw: bytes) -> ParsedResult:
    """Everything the store and the API show of a mail. Never raises: every problem
    met on the way is a line in ``mail.parse_errors``."""
    try:
        return _parse(bytes(raw))
    except Exception as exc:  # a bug of ours: the raw bytes are still stored
        error = f"parser failure: {type(exc).__name__}: {exc}"[:ERROR_CHARS]
        return ParsedResult(ParsedMail(parser_version=PARSER_VERSION, parse_errors=(error,)))


def _parse(raw: bytes) -> ParsedResult:
    errors: list[str] = []
    fields, body = read_fields(raw, 0, len(raw), errors, "headers")
    first: dict[bytes, bytes] = {}
    for name, value in fields:
        first.setdefault(name.lower(), value)

    subject_raw = first.get(b"subject")
    decoded: dict[bytes, str] = {}
    headers = _header_list(fields, errors, subject_raw, decoded)
    subject = _subject(subject_raw, decoded.get(b"subject"), errors)
    from_ = _addresses(first.get(b"from"), errors, "From")
    bodies = _mime.Bodies(errors)
    _mime.walk(raw, fields, body, len(raw), bodies)
    text = bodies.text or ""
    html = bodies.html or ""
    cid_map: dict[str, str] = {}
    for attachment in bodies.attachments:
        if attachment.content_id:
            cid_map.setdefault(attachment.content_id, attachment.id)
    fields_of_mail = {
        "parser_version": PARSER_VERSION,
        "sender": _sender(from_, errors),
        "from_name": from_[0].name if from_ else "",
        "from_address": from_[0].address if from_ else "",
        "has_attachments": any(a.disposition == "attachment" for a in bodies.attachments),
        "subject": subject,
        "preview": _preview(text, html),
        "message_id_header": _message_id(first.get(b"message-id"), errors),
        "date": _date(first.get(b"date"), errors),
        "from": tuple(from_),
        "to": tuple(_addresses(first.get(b"to"), errors, "To")),
        "cc": tuple(_addresses(first.get(b"cc"), errors, "Cc")),
        "reply_to": tuple(_addresses(first.get(b"reply-to"), errors, "Reply-To")),
        "text": text,
        "html": html,
        "attachments": tuple(bodies.attachments),
        "cid_map": cid_map,
        "headers": headers,
        "list_unsubscribe": _list_unsubscribe(first.get(b"list-unsubscribe"), errors),
        "parse_errors": _errors(errors),
    }
    mail = ParsedMail.model_validate(fields_of_mail)
    return ParsedResult(mail, tuple(bodies.data))


def _capped(raw: bytes, errors: list[str], where: str, limit: int = HEADER_RAW_BYTES) -> bytes:
    value, cut = cap_raw(unfold(raw, limit), limit)
    if cut or len(raw) > 2 * limit:
        errors.append(f"{where}: longer than {limit} bytes; cut")
    return value


def _header_list(
    fields: Fields, errors: list[str], subject_raw: bytes | None, decoded: dict[bytes, str]
) -> tuple[tuple[str, str], ...]:
    """The fields as (name, decoded value); ``decoded`` gets the whole decoded value of
    the first Subject (``subject_raw``) when it had to be decoded."""
    if len(fields) > MAX_HEADERS:
        errors.append(f"headers: {len(fields)} fields; only the first {MAX_HEADERS} listed")
    listed: list[tuple[str, str]] = []
    for name_bytes, raw in fields[:MAX_HEADERS]:
        name = _NAMES.get(name_bytes) or name_bytes.decode("ascii")
        if raw.isascii() and b"=?" not in raw and len(raw) <= HEADER_VALUE_CHARS:
            value = raw.decode("ascii")
            if "\n" in value or "\r" in value:
                value = value.replace("\r", "").replace("\n", "")
            value = value.strip(" \t")
        else:
            value = decode_value(_capped(raw, errors, name), errors, name).strip(" \t")
            if raw is subject_raw:
                decoded[b"subject"] = value
            if len(value) > HEADER_VALUE_CHARS:
                errors.append(f"{name}: value longer than {HEADER_VALUE_CHARS} characters; cut")
                value = value[:HEADER_VALUE_CHARS]
        listed.append((name, value))
    return tuple(listed)


def _subject(raw: bytes | None, decoded: str | None, errors: list[str]) -> str:
    if raw is None:
        return ""
    if decoded is None:
        decoded = decode_value(_capped(raw, errors, "Subject"), errors, "Subject")
    return _display(decoded, errors, "Subject")


def _display(text: str, errors: list[str], where: str) -> str:
    """One line: runs of white space as one space, capped."""
    text = _WS.sub(" ", text).strip(" ")
    if len(text) > HEADER_VALUE_CHARS:
        errors.append(f"{where}: longer than {HEADER_VALUE_CHARS} characters; cut")
        text = text[:HEADER_VALUE_CHARS]
    return text


def _addresses(raw: bytes | None, errors: list[str], where: str) -> list[MailAddress]:
    if raw is None:
        return []
    text = text_of(_capped(raw, errors, where), errors, where)
    return parse_addresses(text, errors, where)


def _sender(addresses: list[MailAddress], errors: list[str]) -> str:
    """The display form of From: ``Name <address>``, or the address (or name) alone."""
    shown = [
        f"{a.name} <{a.address}>" if a.name and a.address else a.address or a.name
        for a in addresses
    ]
    return _display(", ".join(shown), errors, "From")


def _message_id(raw: bytes | None, errors: list[str]) -> str:
    if raw is None:
        return ""
    text = text_of(_capped(raw, errors, "Message-ID"), errors, "Message-ID")
    return _WS.sub(" ", text).strip(" ")[:MESSAGE_ID_CHARS]


def _date(raw: bytes | None, errors: list[str]) -> datetime | None:
    if raw is None:
        return None
    text = text_of(unfold(raw, DATE_RAW_BYTES)[:DATE_RAW_BYTES], errors, "Date").strip()
    if not text:
        return None
    try:
        value = _usual_date(text) or parsedate_to_datetime(text)
    except Exception:  # ValueError, and whatever odd input makes the stdlib raise
        errors.append(f"Date: unreadable {text[:60]!r}")
        return None
    if value.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322 3.3)
        value = value.replace(tzinfo=UTC)
    return value


def _usual_date(text: str) -> datetime | None:
    m = _DATE.match(text)
    if m is None:
        return None
    day, month_name, year, hour, minute, second, sign, tz_hours, tz_minutes = m.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        return None
    offset = int(tz_hours) * 3600 + int(tz_minutes) * 60
    if sign == "-":
        offset = -offset
    zone = UTC if offset == 0 else timezone(timedelta(seconds=offset))
    return datetime(
        int(year), month, int(day), int(hour), int(minute), int(second or 0), tzinfo=zone
    )


def _list_unsubscribe(raw: bytes | None, errors: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    text = text_of(_capped(raw, errors, "List-Unsubscribe"), errors, "List-Unsubscribe")
    urls: list[str] = []
    for item in _ANGLE_ITEM.findall(text):
        url = "".join(item.split())
        if not url.lower().startswith(_UNSUBSCRIBE_SCHEMES):
            errors.append(f"List-Unsubscribe: ignored {url[:40]!r} (not http, https or mailto)")
            continue
        if len(url) > URL_CHARS:
            errors.append(f"List-Unsubscribe: URL longer than {URL_CHARS} characters ignored")
            continue
        if url not in urls:
            urls.append(url)
        if len(urls) == MAX_UNSUBSCRIBE_URLS:
            break
    return tuple(urls)


def _preview(text: str, html: str) -> str:
    source = _flat(text[: PREVIEW_CHARS * 4])
    if len(source) <= PREVIEW_CHARS and len(text) > PREVIEW_CHARS * 4:
        source = _flat(text[: PREVIEW_CHARS * 64])
    if not source and text.strip():
        source = _flat(text[:PREVIEW_SOURCE_CHARS])
    if not source and html:
        source = _flat(html_to_text(html[:PREVIEW_SOURCE_CHARS], PREVIEW_CHARS + 1))
    if len(source) <= PREVIEW_CHARS:
        return source
    return source[: PREVIEW_CHARS - 1].rstrip() + "…"


def _flat(text: str) -> str:
    """One line, without the zero-width characters newsletters pad previews with."""
    if not text.isascii():
        text = _INVISIBLE.sub("", text)
    return " ".join(text.split())


def _errors(errors: list[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(error[:ERROR_CHARS] for error in errors))
    if len(unique) > MAX_ERRORS:
        more = len(unique) - MAX_ERRORS + 1
        unique = [*unique[: MAX_ERRORS - 1], f"... and {more} more problems"]
    return tuple(unique)
