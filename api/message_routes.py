"""Routes of one message: read it whole, download it, show its HTML, mark it, delete it.

Thin translations between HTTP and :mod:`api.message_service`. Every route answers 404
for another mailbox's ids, and the one error shape of :mod:`api.errors`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse

from api import message_service, service
from api.deps import MailboxDep, RuntimeDep, current_mailbox
from api.errors import NotFound, Unauthorized, error_responses
from api.limits import came_over_https
from api.signed_urls import UrlSigner, expiry
from schemas.api import MessagePublic, MessageSummaryPublic, MessageUpdate, SignedUrl
from schemas.mail import AttachmentInfo
from schemas.records import utcnow
from schemas.settings import Settings
from store import Mailbox

message_router = APIRouter(prefix="/api/messages", tags=["messages"])

MessageId = Annotated[str, Path(min_length=1, max_length=128)]
AttachmentId = Annotated[str, Path(min_length=1, max_length=128)]
RemoteFlag = Annotated[int, Query(ge=0, le=1, description="1: let the HTML load remote resources.")]
ThemeQuery = Annotated[
    Literal["light", "dark"] | None,
    Query(
        description="The reading page's theme: decides the mail's prefers-color-scheme "
        "queries; the document is dark only for mail that declares dark support."
    ),
]

#: Headers of everything we serve that a browser must never render on our origin.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "no-store",
}
REMOTE_BLOCKED_HEADER = "X-Tmpmail-Remote-Blocked"
IMAGES_LEFT_OUT_HEADER = "X-Tmpmail-Images-Left-Out"


async def get_signer(request: Request) -> UrlSigner:  # async: no thread-pool hop
    signer: UrlSigner = request.app.state.url_signer
    return signer


SignerDep = Annotated[UrlSigner, Depends(get_signer)]


def _html_resource(remote: int, theme: str | None = None) -> str:
    return f"html?remote={remote}" + (f"&theme={theme}" if theme else "")


def _attachment_resource(attachment_id: str) -> str:
    return f"attachments/{attachment_id}"


SigQuery = Annotated[str | None, Query(max_length=64, description="A signed URL's signature.")]
ExpQuery = Annotated[int | None, Query(ge=0, le=2**40, description="With sig: its expiry.")]
SignedMailboxQuery = Annotated[
    str | None, Query(max_length=320, description="With sig: the mailbox it was issued to.")
]


async def _signed_mailbox(
    runtime: RuntimeDep,
    signer: UrlSigner,
    message_id: str,
    resource: str,
    sig: str,
    exp: int | None,
    address: str | None,
) -> Mailbox:
    """The mailbox a signed URL was issued to, or 401: one answer for every way it can
    be wrong (so it tells nothing of whether the address exists)."""
    if exp is None or address is None:
        raise Unauthorized("a signed URL needs sig, exp and mailbox")
    now = utcnow()
    found = await runtime.store.get_mailbox(address)
    if (
        found is None
        or found.deleted
        or found.expires_at <= now
        or not signer.verify(found, message_id, resource, exp, sig, now)
    ):
        raise Unauthorized("the signed URL is invalid or has expired")
    return found


def _signed_query(
    mailbox: Mailbox, signer: UrlSigner, message_id: str, resource: str
) -> tuple[str, int]:
    """The query that signs ``resource`` of this message for a few minutes, and its expiry."""
    expires = expiry(utcnow())
    sig = signer.sign(mailbox, message_id, resource, expires)
    return f"mailbox={quote(mailbox.address)}&exp={expires}&sig={sig}", expires


async def attachment_reader(
    request: Request,
    runtime: RuntimeDep,
    signer: SignerDep,
    message_id: MessageId,
    attachment_id: AttachmentId,
    sig: SigQuery = None,
    exp: ExpQuery = None,
    mailbox: SignedMailboxQuery = None,
) -> Mailbox:
    """The mailbox whose attachment is read: the token, or a URL signed for exactly this
    attachment (what ``/html`` links an inline image too large to embed with)."""
    if sig is None:
        return await current_mailbox(request, runtime)
    return await _signed_mailbox(
        runtime, signer, message_id, _attachment_resource(attachment_id), sig, exp, mailbox
    )


def public_base_url(request: Request, settings: Settings) -> str:
    """This API's origin and root as the browser sees it (https behind a trusted proxy)."""
    base = str(request.base_url).rstrip("/")
    peer = request.client.host if request.client else None
    https = came_over_https(request.url.scheme, peer, request.headers, settings.trusted_proxies)
    if https and base.startswith("http://"):
        base = "https://" + base[len("http://") :]
    return base


#: OpenAPI: the errors of a route reading one message with the token (or a signed URL).
_READ_ERRORS = error_responses(401, 404, 422, 429, 503)
_INTEGER_HEADER = {"schema": {"type": "integer", "minimum": 0}}
_DOWNLOAD_DOC_HEADERS = {
    "Content-Disposition": {
        "description": "Always `attachment`, with an RFC 6266 file name.",
        "schema": {"type": "string"},
    },
    **{
        name: {"schema": {"type": "string", "enum": [value]}}
        for name, value in DOWNLOAD_HEADERS.items()
    },
}


@message_router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={204: {"description": "Deleted."}, **error_responses(401, 403, 429, 503)},
)
async def delete_all_messages(runtime: RuntimeDep, mailbox: MailboxDep) -> Response:
    """Delete every message of the caller's mailbox."""
    await runtime.store.delete_messages(mailbox.address)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@message_router.get(
    "/{message_id}",
    response_model=MessagePublic,
    response_model_by_alias=True,
    responses=_READ_ERRORS,
)
async def get_message(
    runtime: RuntimeDep, mailbox: MailboxDep, message_id: MessageId
) -> MessagePublic:
    """The whole message: addresses, text, headers, attachments, and what its HTML would
    load (the HTML itself is at ``/html``)."""
    return await message_service.full_message(runtime.store, mailbox, message_id)


@message_router.patch(
    "/{message_id}",
    response_model=MessageSummaryPublic,
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
async def update_message(
    runtime: RuntimeDep, mailbox: MailboxDep, message_id: MessageId, body: MessageUpdate
) -> MessageSummaryPublic:
    """Mark the message seen (or not); returns its summary."""
    if not await runtime.store.set_seen(mailbox.address, message_id, body.seen):
        raise NotFound("no such message")
    stored = await message_service.get_stored(runtime.store, mailbox, message_id)
    return service.summary_public(stored)


@message_router.delete(
    "/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        204: {"description": "Deleted (a tombstone stays until its expiry)."},
        **error_responses(401, 403, 404, 422, 429, 503),
    },
)
async def delete_message(
    runtime: RuntimeDep, mailbox: MailboxDep, message_id: MessageId
) -> Response:
    """Delete the message (a replay will not bring it back)."""
    if not await runtime.store.delete_message(mailbox.address, message_id):
        raise NotFound("no such message")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@message_router.get(
    "/{message_id}/raw",
    response_class=Response,
    responses={
        200: {
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The exact bytes stored, as a download.",
            "headers": _DOWNLOAD_DOC_HEADERS,
        },
        **_READ_ERRORS,
    },
)
async def get_raw(runtime: RuntimeDep, mailbox: MailboxDep, message_id: MessageId) -> Response:
    """The message as received (``.eml``), as a download."""
    stored = await message_service.get_stored(runtime.store, mailbox, message_id)
    raw = await message_service.raw_message(runtime.store, mailbox, message_id)
    disposition = message_service.content_disposition(stored.subject, "message", ".eml")
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": disposition}
    return Response(raw, media_type="message/rfc822", headers=headers)


@message_router.get(
    "/{message_id}/attachments/{attachment_id}",
    response_class=Response,
    responses={
        200: {
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in [*sorted(message_service.SAFE_TYPES), "application/octet-stream"]
            },
            "description": "The decoded bytes, always as a download: the stored type for "
            "images, PDF, plain text and CSV, else `application/octet-stream`.",
            "headers": _DOWNLOAD_DOC_HEADERS,
        },
        **error_responses(
            401,
            404,
            422,
            429,
            503,
            described={
                401: "`unauthorized`: no token (nor a URL signed for this attachment), an "
                "invalid or expired signed URL, or a token no mailbox has; "
                "`mailbox_expired` / `mailbox_deleted`: the token's mailbox has ended."
            },
        ),
    },
)
async def get_attachment(
    runtime: RuntimeDep,
    mailbox: Annotated[Mailbox, Depends(attachment_reader)],
    message_id: MessageId,
    attachment_id: AttachmentId,
) -> Response:
    """One attachment or inline part, as a download that never renders on our origin.
    Takes the token, or a URL that ``/html`` signed for this one attachment (``sig``,
    ``exp``, ``mailbox``)."""
    info, data = await message_service.attachment(runtime.store, mailbox, message_id, attachment_id)
    disposition = message_service.content_disposition(info.filename, "attachment")
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": disposition}
    return Response(
        data, media_type=message_service.attachment_media_type(info.content_type), headers=headers
    )


@message_router.get("/{message_id}/html-url", response_model=SignedUrl, responses=_READ_ERRORS)
async def get_html_url(
    runtime: RuntimeDep,
    mailbox: MailboxDep,
    signer: SignerDep,
    response: Response,
    message_id: MessageId,
    remote: RemoteFlag = 0,
    theme: ThemeQuery = None,
) -> SignedUrl:
    """A URL of ``/html`` that works for a few minutes without the token or cookie, for
    ``<iframe sandbox>`` (whose opaque origin sends no cookie)."""
    await message_service.get_stored(runtime.store, mailbox, message_id)
    resource = _html_resource(remote, theme)
    query, expires = _signed_query(mailbox, signer, message_id, resource)
    response.headers["Cache-Control"] = "no-store"
    return SignedUrl(
        url=f"/api/messages/{message_id}/{resource}&{query}",
        expires_at=datetime.fromtimestamp(expires, tz=UTC),
    )


async def html_reader(
    request: Request,
    runtime: RuntimeDep,
    signer: SignerDep,
    message_id: MessageId,
    remote: RemoteFlag = 0,
    theme: ThemeQuery = None,
    sig: SigQuery = None,
    exp: ExpQuery = None,
    mailbox: SignedMailboxQuery = None,
) -> Mailbox:
    """The mailbox whose message ``/html`` shows: from a signed URL, else the token."""
    if sig is None:
        return await current_mailbox(request, runtime)
    return await _signed_mailbox(
        runtime, signer, message_id, _html_resource(remote, theme), sig, exp, mailbox
    )


@message_router.get(
    "/{message_id}/html",
    response_class=Response,
    responses={
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "The sanitised document, under its own CSP.",
            "headers": {
                "Content-Security-Policy": {
                    "description": "The sanitiser's: no script, remote loads only with `remote=1`.",
                    "schema": {"type": "string"},
                },
                REMOTE_BLOCKED_HEADER: {
                    **_INTEGER_HEADER,
                    "description": "Remote resources blocked (0 with `remote=1`).",
                },
                IMAGES_LEFT_OUT_HEADER: {
                    **_INTEGER_HEADER,
                    "description": "`cid:` parts not shown: a type never inlined, or missing.",
                },
            },
        },
        **error_responses(
            401,
            404,
            422,
            429,
            503,
            described={
                401: "`unauthorized`: no token (nor a signed URL), an invalid or expired "
                "signed URL, or a token no mailbox has; `mailbox_expired` / "
                "`mailbox_deleted`: the token's mailbox has ended.",
                404: "`not_found`: no such message, or it has no HTML or text to show.",
            },
        ),
    },
)
async def get_html(
    request: Request,
    runtime: RuntimeDep,
    signer: SignerDep,
    reader: Annotated[Mailbox, Depends(html_reader)],
    message_id: MessageId,
    remote: RemoteFlag = 0,
    theme: ThemeQuery = None,
) -> HTMLResponse:
    """The message's HTML sanitised (its text, linkified, for a text-only mail). Takes the
    token, or the signed URL of ``/html-url`` (``sig``, ``exp``, ``mailbox``)."""
    base = public_base_url(request, runtime.settings)

    def link_image(info: AttachmentInfo) -> str:
        query, _ = _signed_query(reader, signer, message_id, _attachment_resource(info.id))
        return f"{base}/api/messages/{quote(message_id)}/attachments/{quote(info.id)}?{query}"

    rendered = await message_service.render_html(
        runtime.store,
        reader,
        message_id,
        allow_remote=bool(remote),
        link_image=link_image,
        color_scheme=theme,
    )
    headers = {
        "Content-Security-Policy": rendered.csp,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        REMOTE_BLOCKED_HEADER: str(rendered.remote_blocked),
        IMAGES_LEFT_OUT_HEADER: str(rendered.images_left_out),
    }
    return HTMLResponse(rendered.document, headers=headers)
