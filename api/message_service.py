"""Reading one message: the whole message, its raw bytes, its HTML, its attachments.

Without HTTP: the routes in :mod:`api.message_routes` only translate. Every read is
scoped by the caller's mailbox address, so another mailbox's id is simply not found.

* **Downloads never render on our origin.** Raw bytes and attachments are served as
  attachments (RFC 6266 names), ``nosniff`` and ``Content-Security-Policy: sandbox``;
  an attachment keeps its stored type only when it is one of :data:`SAFE_TYPES`.
* **HTML is sanitised when served** (:mod:`api.sanitize`), never stored sanitised, so a
  sanitiser fix reaches mail already stored. ``cid:`` images are inlined as ``data:``
  URLs within :data:`INLINE_IMAGE_BYTES` each and :data:`INLINE_TOTAL_BYTES` in all;
  larger ones get a short-lived URL signed for that one attachment (the document's
  sandboxed frame sends no cookie), made by the route; parts of a type we never inline
  are left out (they stay downloadable as attachments).
* Sanitising is CPU work: it runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from api import sanitize
from api.errors import NotFound
from schemas.api import AttachmentPublic, MessagePublic
from schemas.mail import AttachmentInfo, ParsedMail
from store import Mailbox, MailStore, StoredMessage

#: Attachment types served as themselves; anything else is ``application/octet-stream``.
#: No HTML, SVG, XML or script: a browser could run them.
SAFE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    }
)
#: Image types inlined into the HTML as ``data:`` URLs.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
INLINE_IMAGE_BYTES = 512 * 1024
INLINE_TOTAL_BYTES = 2 * 1024 * 1024
FILENAME_CHARS = 120

_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._ ()+-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\"\\/]+")


@dataclass(frozen=True, slots=True)
class RenderedHtml:
    """A sanitised document, ready to serve."""

    document: str
    csp: str
    remote_blocked: int
    #: ``cid:`` parts not shown: a type we never inline, or missing from the store.
    images_left_out: int = 0


def content_disposition(filename: str, fallback: str, suffix: str = "") -> str:
    """``attachment`` with an ASCII ``filename`` and, for any other name, ``filename*``
    (RFC 6266, RFC 8187). Path separators, quotes, controls and invisible format
    characters (bidi overrides that show ``report\u202efdp.exe`` as ``reportexe.pdf``)
    never get through."""
    name = _CONTROL.sub("_", unicodedata.normalize("NFC", filename))
    name = "".join("_" if unicodedata.category(c) in {"Cc", "Cf"} else c for c in name)
    name = name.strip(" ._")
    name = name[:FILENAME_CHARS] or fallback
    if suffix and not name.lower().endswith(suffix):
        name += suffix
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = _UNSAFE_ASCII.sub("_", plain).strip(" ._") or fallback + suffix
    value = f'attachment; filename="{plain}"'
    if plain != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def attachment_media_type(content_type: str) -> str:
    """The stored type when a browser cannot run it, else ``application/octet-stream``."""
    ctype = content_type.partition(";")[0].strip().lower()
    return ctype if ctype in SAFE_TYPES else "application/octet-stream"


def message_public(
    stored: StoredMessage,
    document: ParsedMail | None,
    remote_resources: int = 0,
    has_dark_mode: bool = False,
) -> MessagePublic:
    """The whole message from its stored summary and its document (if it has one)."""
    base = MessagePublic.model_validate(stored, from_attributes=True)
    if document is None:
        return base
    return base.model_copy(
        update={
            "date": document.date,
            "from_": list(document.from_),
            "to": list(document.to),
            "cc": list(document.cc),
            "reply_to": list(document.reply_to),
            "text": document.text,
            "has_html": bool(document.html),
            "remote_resources": remote_resources,
            "has_dark_mode": has_dark_mode,
            "headers": list(document.headers),
            "attachments": [_attachment_public(a) for a in document.attachments],
            "list_unsubscribe": list(document.list_unsubscribe),
        }
    )


def _attachment_public(attachment: AttachmentInfo) -> AttachmentPublic:
    return AttachmentPublic(
        id=attachment.id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        content_id=attachment.content_id,
        inline=attachment.disposition == "inline",
    )


async def get_stored(store: MailStore, mailbox: Mailbox, message_id: str) -> StoredMessage:
    message = await store.get_message(mailbox.address, message_id)
    if message is None:
        raise NotFound("no such message")
    return message


async def full_message(store: MailStore, mailbox: Mailbox, message_id: str) -> MessagePublic:
    stored = await get_stored(store, mailbox, message_id)
    document = await store.get_document(mailbox.address, message_id)
    remote, dark = 0, False
    if document is not None and document.html:
        remote, dark = await asyncio.to_thread(html_facts, document.html)
    return message_public(stored, document, remote, dark)


def count_remote_resources(html: str) -> int:
    """The remote resources ``html`` would load: what the sanitiser blocks without them."""
    return html_facts(html)[0]


def html_facts(html: str) -> tuple[int, bool]:
    """What the sanitiser finds in ``html``: the remote resources it would load, and
    whether it declares dark-mode support."""
    result = sanitize.sanitize_html(html, allow_remote=False, inline_images={})
    return int(result.remote_blocked), result.has_dark_mode


async def raw_message(store: MailStore, mailbox: Mailbox, message_id: str) -> bytes:
    raw = await store.get_raw(mailbox.address, message_id)
    if raw is None:
        raise NotFound("no such message")
    return raw


async def attachment(
    store: MailStore, mailbox: Mailbox, message_id: str, attachment_id: str
) -> tuple[AttachmentInfo, bytes]:
    document = await store.get_document(mailbox.address, message_id)
    info = next(
        (a for a in (document.attachments if document else ()) if a.id == attachment_id), None
    )
    if info is None:
        raise NotFound("no such attachment")
    data = await store.get_attachment(mailbox.address, message_id, attachment_id)
    if data is None:
        raise NotFound("no such attachment")
    return info, data


@dataclass(frozen=True, slots=True)
class InlinePlan:
    """How each ``cid:`` part of a message's HTML is shown, by content id."""

    #: Within the bounds: embedded as ``data:`` URLs.
    embedded: dict[str, AttachmentInfo]
    #: Images above the bounds: linked by a signed URL.
    linked: dict[str, AttachmentInfo]
    #: Referenced parts of a type we never inline.
    left_out: int


def inline_plan(document: ParsedMail) -> InlinePlan:
    """Which ``cid:`` parts are embedded, which linked, and how many left out."""
    by_id = {a.id: a for a in document.attachments}
    embedded: dict[str, AttachmentInfo] = {}
    linked: dict[str, AttachmentInfo] = {}
    total = left_out = 0
    for cid, attachment_id in document.cid_map.items():
        info = by_id.get(attachment_id)
        if info is None:
            continue
        if attachment_media_type(info.content_type) not in INLINE_TYPES:
            left_out += 1
        elif info.size <= INLINE_IMAGE_BYTES and total + info.size <= INLINE_TOTAL_BYTES:
            embedded[cid] = info
            total += info.size
        else:
            linked[cid] = info
    return InlinePlan(embedded, linked, left_out)


async def render_html(
    store: MailStore,
    mailbox: Mailbox,
    message_id: str,
    *,
    allow_remote: bool,
    link_image: Callable[[AttachmentInfo], str] | None = None,
    color_scheme: str | None = None,
) -> RenderedHtml:
    """The message's HTML sanitised, or its text linkified as a document; 404 when it has
    neither (or no stored parse). ``link_image`` makes the absolute URL of an inline
    image too large to embed; without it such images are left out. ``color_scheme``
    is the reading page's theme (``light``/``dark``, see :func:`api.sanitize.sanitize_html`);
    a text-only mail follows it, an HTML mail only when it declares dark support."""
    document = await store.get_document(mailbox.address, message_id)
    if document is None or not (document.html or document.text):
        raise NotFound("this message has no HTML or text to show")
    if not document.html:
        return await asyncio.to_thread(_text_document, document.text, color_scheme)
    plan = inline_plan(document)
    left_out = plan.left_out
    images: dict[str, Any] = {}
    for cid, info in plan.embedded.items():
        data = await store.get_attachment(mailbox.address, message_id, info.id)
        if data is None:
            left_out += 1
            continue
        images[cid] = sanitize.InlineImage(
            content_type=attachment_media_type(info.content_type), data=data
        )
    for cid, info in plan.linked.items():
        if link_image is None:
            left_out += 1
            continue
        images[cid] = sanitize.InlineImage(
            content_type=attachment_media_type(info.content_type), url=link_image(info)
        )
    return await asyncio.to_thread(
        _html_document, document.html, allow_remote, images, left_out, color_scheme
    )


def _html_document(
    html: str,
    allow_remote: bool,
    images: dict[str, Any],
    left_out: int,
    color_scheme: str | None = None,
) -> RenderedHtml:
    result = sanitize.sanitize_html(
        html, allow_remote=allow_remote, inline_images=images, color_scheme=color_scheme
    )
    # What was held back: nothing, once the reader asked for remote content.
    blocked = 0 if allow_remote else result.remote_blocked
    return RenderedHtml(result.document, result.csp, blocked, left_out)


#: Plain text has no colours of its own: its document takes either theme.
_TEXT_STYLE = "<style>:root{color-scheme:light dark}</style>"


def _text_document(text: str, color_scheme: str | None = None) -> RenderedHtml:
    """A text-only mail as a document: linkified, in ``<pre>``, through the sanitiser
    too, so that every document we serve has the sanitiser's CSP. It follows the
    reader's theme (or, without one, the system's)."""
    fragment = (
        f'{_TEXT_STYLE}<pre style="white-space: pre-wrap">{sanitize.linkify_text(text)}</pre>'
    )
    result = sanitize.sanitize_html(
        fragment, allow_remote=False, inline_images={}, color_scheme=color_scheme
    )
    return RenderedHtml(result.document, result.csp, result.remote_blocked)
