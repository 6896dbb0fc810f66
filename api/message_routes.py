"""Routes of one message: read it whole, download it, show its HTML, mark it, delete it.

Thin translations between HTTP and :mod:`api.message_service`. Every route answers 404
for another mailbox's ids, and the one error shape of :mod:`api.errors`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse

from api import message_service, service
from api.deps import MailboxDep, RuntimeDep, current_mailbox
from api.errors import ERROR_RESPONSES, NotFound, Unauthorized
from api.signed_urls import UrlSigner, expiry
from schemas.api import MessagePublic, MessageSummaryPublic, MessageUpdate, SignedUrl
from schemas.records import utcnow
from store import Mailbox

message_router = APIRouter(prefix="/api/messages", tags=["messages"], responses=ERROR_RESPONSES)

MessageId = Annotated[str, Path(min_length=1, max_length=128)]
AttachmentId = Annotated[str, Path(min_length=1, max_length=128)]
RemoteFlag = Annotated[int, Query(ge=0, le=1, description="1: let the HTML load remote resources.")]

#: Headers of everything we serve that a browser must never render on our origin.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "no-store",
}
REMOTE_BLOCKED_HEADER = "X-Tmpmail-Remote-Blocked"
IMAGES_LEFT_OUT_HEADER = "X-Tmpmail-Images-Left-Out"


def get_signer(request: Request) -> UrlSigner:
    signer: UrlSigner = request.app.state.url_signer
    return signer


SignerDep = Annotated[UrlSigner, Depends(get_signer)]


def _html_resource(remote: int) -> str:
    return f"html?remote={remote}"


@message_router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def delete_all_messages(runtime: RuntimeDep, mailbox: MailboxDep) -> Response:
    """Delete every message of the caller's mailbox."""
    await runtime.store.delete_messages(mailbox.address)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@message_router.get("/{message_id}", response_model=MessagePublic, response_model_by_alias=True)
async def get_message(
    runtime: RuntimeDep, mailbox: MailboxDep, message_id: MessageId
) -> MessagePublic:
    """The whole message: addresses, text, headers, attachments, and what its HTML would
    load (the HTML itself is at ``/html``)."""
    return await message_service.full_message(runtime.store, mailbox, message_id)


@message_router.patch("/{message_id}", response_model=MessageSummaryPublic)
async def update_message(
    runtime: RuntimeDep, mailbox: MailboxDep, message_id: MessageId, body: MessageUpdate
) -> MessageSummaryPublic:
    """Mark the message seen (or not); returns its summary."""
    if not await runtime.store.set_seen(mailbox.address, message_id, body.seen):
        raise NotFound("no such message")
    stored = await message_service.get_stored(runtime.store, mailbox, message_id)
    return service.summary_public(stored)


@message_router.delete("/{message_id}", status_code=status.HTTP_204_NO_CONTENT)
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
    responses={200: {"content": {"message/rfc822": {}}, "description": "The exact bytes stored."}},
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
            "content": {"application/octet-stream": {}},
            "description": "The decoded bytes, always as a download; the stored type only "
            "for images, PDF and plain text.",
        }
    },
)
async def get_attachment(
    runtime: RuntimeDep, mailbox: MailboxDep, message_id: MessageId, attachment_id: AttachmentId
) -> Response:
    """One attachment or inline part, as a download that never renders on our origin."""
    info, data = await message_service.attachment(runtime.store, mailbox, message_id, attachment_id)
    disposition = message_service.content_disposition(info.filename, "attachment")
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": disposition}
    return Response(
        data, media_type=message_service.attachment_media_type(info.content_type), headers=headers
    )


@message_router.get("/{message_id}/html-url", response_model=SignedUrl)
async def get_html_url(
    runtime: RuntimeDep,
    mailbox: MailboxDep,
    signer: SignerDep,
    response: Response,
    message_id: MessageId,
    remote: RemoteFlag = 0,
) -> SignedUrl:
    """A URL of ``/html`` that works for a few minutes without the token or cookie, for
    ``<iframe sandbox>`` (whose opaque origin sends no cookie)."""
    await message_service.get_stored(runtime.store, mailbox, message_id)
    expires = expiry(utcnow())
    sig = signer.sign(mailbox, message_id, _html_resource(remote), expires)
    response.headers["Cache-Control"] = "no-store"
    query = f"remote={remote}&mailbox={quote(mailbox.address)}&exp={expires}&sig={sig}"
    return SignedUrl(
        url=f"/api/messages/{message_id}/html?{query}",
        expires_at=datetime.fromtimestamp(expires, tz=UTC),
    )


async def html_reader(
    request: Request,
    runtime: RuntimeDep,
    signer: SignerDep,
    message_id: MessageId,
    remote: RemoteFlag = 0,
    sig: Annotated[str | None, Query(max_length=64)] = None,
    exp: Annotated[int | None, Query(ge=0, le=2**40)] = None,
    mailbox: Annotated[
        str | None, Query(max_length=320, description="With sig: the mailbox it was issued to.")
    ] = None,
) -> Mailbox:
    """The mailbox whose message ``/html`` shows: from a signed URL, else the token."""
    if sig is None:
        return await current_mailbox(request, runtime)
    if exp is None or mailbox is None:
        raise Unauthorized("a signed URL needs sig, exp and mailbox")
    now = utcnow()
    found = await runtime.store.get_mailbox(mailbox)
    if (
        found is None
        or found.deleted
        or found.expires_at <= now
        or not signer.verify(found, message_id, _html_resource(remote), exp, sig, now)
    ):
        raise Unauthorized("the signed URL is invalid or has expired")
    return found


@message_router.get(
    "/{message_id}/html",
    response_class=Response,
    responses={
        200: {
            "content": {"text/html": {}},
            "description": "The sanitised document, under its own CSP. "
            f"`{REMOTE_BLOCKED_HEADER}`: remote resources blocked; "
            f"`{IMAGES_LEFT_OUT_HEADER}`: cid: images too large to inline.",
        }
    },
)
async def get_html(
    runtime: RuntimeDep,
    reader: Annotated[Mailbox, Depends(html_reader)],
    message_id: MessageId,
    remote: RemoteFlag = 0,
) -> HTMLResponse:
    """The message's HTML sanitised (its text, linkified, for a text-only mail). Takes the
    token, or the signed URL of ``/html-url`` (``sig``, ``exp``, ``mailbox``)."""
    rendered = await message_service.render_html(
        runtime.store, reader, message_id, allow_remote=bool(remote)
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
