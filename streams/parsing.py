"""Parsing, pure and fast: the summary a list needs, from the exact raw bytes.

The stdlib's ``policy.default`` caps a process near 700 mails/s (platform notes), so the
hot path parses with ``compat32`` and decodes only the headers it shows. Nothing here
raises on bad input: every problem becomes a line in ``parse_errors`` and the raw bytes
are stored regardless.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.utils
import re
from email.message import Message
from html.parser import HTMLParser

from schemas.mail import MailSummary

PREVIEW_CHARS = 200
#: RFC 5322 lines are at most 998 octets; a longer Message-ID is cut there.
MESSAGE_ID_CHARS = 998
#: A displayed header value is cut here, and only this much of its source is decoded.
HEADER_DISPLAY_CHARS = 998
HEADER_SOURCE_LIMIT = 64 * 1024
#: Codecs Python has that are no mail charset: they raise with "replace", or decode junk.
UNUSABLE_CODECS = frozenset(
    {"idna", "punycode", "undefined", "raw-unicode-escape", "unicode-escape"}
)
#: Largest body part we decode for a preview; bigger parts are skipped.
PREVIEW_SOURCE_LIMIT = 256 * 1024

_WS = re.compile(r"\s+")


def summarise(raw: bytes) -> MailSummary:
    """Sender (display form), subject, a text preview and the problems met on the way."""
    errors: list[str] = []
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # compat32 is lenient; this is a last resort
        return MailSummary(parse_errors=(f"unparseable message: {type(exc).__name__}: {exc}",))
    errors.extend(f"message: {type(d).__name__}" for d in msg.defects)
    sender = _decode_header(msg.get("From", ""), "From", errors)
    subject = _decode_header(msg.get("Subject", ""), "Subject", errors)
    preview = _preview(msg, errors)
    message_id = _WS.sub(" ", str(msg.get("Message-ID", "") or "")).strip()[:MESSAGE_ID_CHARS]
    return MailSummary(
        sender=sender,
        subject=subject,
        preview=preview,
        message_id_header=message_id,
        parse_errors=tuple(dict.fromkeys(errors)),
    )


def _decode_header(value: object, name: str, errors: list[str]) -> str:
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    text = str(value)
    if len(text) > HEADER_SOURCE_LIMIT:
        errors.append(f"{name}: {len(text)} characters, cut to {HEADER_SOURCE_LIMIT}")
        text = text[:HEADER_SOURCE_LIMIT]
    try:
        parts = email.header.decode_header(text)
        decoded = "".join(
            chunk.decode(_charset(charset), "replace") if isinstance(chunk, bytes) else chunk
            for chunk, charset in parts
        )
    except Exception as exc:
        errors.append(f"{name}: undecodable header ({type(exc).__name__})")
        decoded = text
    flat = _WS.sub(" ", decoded).strip()
    if len(flat) > HEADER_DISPLAY_CHARS:
        errors.append(f"{name}: shown cut to {HEADER_DISPLAY_CHARS} characters")
        flat = flat[: HEADER_DISPLAY_CHARS - 1] + "…"
    return flat


def _charset(name: str | None) -> str:
    if not name or name.lower() in ("unknown-8bit", "x-unknown", "default"):
        return "utf-8"
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return "utf-8"
    if not getattr(codec, "_is_text_encoding", True) or codec.name in UNUSABLE_CODECS:
        return "utf-8"  # not a charset: it would raise on "replace", or decode nonsense
    return name


def _preview(msg: Message, errors: list[str]) -> str:
    html: str | None = None
    for part in msg.walk():
        if part.is_multipart():
            errors.extend(f"part: {type(d).__name__}" for d in part.defects)
            continue
        if part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        text = _part_text(part, errors)
        if text is None:
            continue
        if ctype == "text/plain" and text.strip():
            return _clip(text)
        if ctype == "text/html" and html is None:
            html = text
    return _clip(_html_to_text(html)) if html else ""


def _part_text(part: Message, errors: list[str]) -> str | None:
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:
        errors.append(f"body: cannot decode ({type(exc).__name__})")
        return None
    if not isinstance(payload, bytes):
        return None
    errors.extend(f"part: {type(d).__name__}" for d in part.defects)
    payload = payload[:PREVIEW_SOURCE_LIMIT]
    charset = part.get_content_charset() or "utf-8"
    usable = _charset(charset)
    if usable != charset and charset not in ("unknown-8bit", "x-unknown", "default"):
        errors.append(f"body: charset {charset[:40]!r} is not usable, read as {usable}")
    return payload.decode(usable, "replace")


def _clip(text: str) -> str:
    flat = _WS.sub(" ", text).strip()
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1].rstrip() + "…"


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def _html_to_text(html: str) -> str:
    parser = _TextOnly()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return ""
    return " ".join(parser.chunks)
