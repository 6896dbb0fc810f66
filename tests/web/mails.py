"""Mails the web tests send: plain text with links, a styled HTML newsletter with an
inline image, a remote image and attachments, and one that declares dark-mode support."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, made by hand (no imaging library here)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" + bytes(rgb) * width
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


#: An attachment whose bytes the download test compares: every byte value, twice.
REPORT_PDF = b"%PDF-1.4\n" + bytes(range(256)) * 2 + b"\n%%EOF\n"
NOTES_TXT = "Résumé notes: ünïcödé survives.\n".encode()


def _base(to: str, subject: str, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(idstring=uuid.uuid4().hex[:8], domain="example.org")
    return msg


def _bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def text_mail(to: str, subject: str = "Your sign-in link") -> bytes:
    msg = _base(to, subject, "Acme Accounts <accounts@acme.example>")
    msg.set_content(
        "Hello,\n\n"
        "Use this link to sign in: https://acme.example/login?token=abc123&next=%2Fhome.\n"
        "Questions? Write to help@acme.example or see www.acme.example/help.\n"
        "Not a link: javascript:alert(1) <b>not bold</b>\n\n"
        "The code is 482913. It expires in 10 minutes.\n"
    )
    return _bytes(msg)


NEWSLETTER_HTML = """\
<!doctype html><html><head><style>
  body { margin: 0; background: #eef1f6; font-family: Helvetica, Arial, sans-serif;
         color: #1f2933; }
  .wrap { max-width: 560px; margin: 0 auto; padding: 24px 12px; }
  .card { background: #ffffff; border-radius: 10px; overflow: hidden; }
  .hero { background: #0f766e; color: #ffffff; padding: 28px 28px 24px; }
  .hero h1 { margin: 0 0 6px; font-size: 26px; }
  .hero p { margin: 0; color: #ccfbf1; }
  .content { padding: 24px 28px; font-size: 15px; line-height: 1.55; }
  .cta { display: inline-block; background: #0f766e; color: #ffffff; padding: 11px 20px;
         border-radius: 6px; text-decoration: none; font-weight: bold; }
  .foot { color: #52606d; font-size: 12px; padding: 16px 28px 24px; }
</style></head><body>
<div class="wrap"><div class="card">
  <div class="hero"><img src="cid:logo@example.org" width="40" height="40" alt="Logo">
    <h1>Your weekly digest</h1><p>Three things worth your time this week.</p></div>
  <div class="content">
    <p>Hi there,</p>
    <p>Here is what happened while you were away: the new dashboard shipped, the API got
       faster, and we fixed the bug you reported.</p>
    <p><img src="https://tracker.example/open.gif" width="1" height="1" alt="">
       <img src="https://cdn.example/banner.png" width="500" alt="Banner"></p>
    <p><a class="cta" href="https://acme.example/digest">Read the digest</a></p>
    <p>Cheers,<br>The Acme team</p>
  </div>
  <div class="foot">You get this because you signed up at acme.example.
    <a href="https://acme.example/unsubscribe">Unsubscribe</a></div>
</div></div></body></html>
"""


def newsletter_mail(to: str, subject: str = "Your weekly digest") -> bytes:
    msg = _base(to, subject, '"Acme Digest" <digest@acme.example>')
    msg.set_content("Your weekly digest: https://acme.example/digest\n")
    msg.add_alternative(NEWSLETTER_HTML, subtype="html")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    html_part.add_related(  # type: ignore[union-attr]
        png(40, 40, (20, 184, 166)),
        maintype="image",
        subtype="png",
        cid="<logo@example.org>",
        filename="logo.png",
        disposition="inline",
    )
    msg.add_attachment(REPORT_PDF, maintype="application", subtype="pdf", filename="report Q3.pdf")
    msg.add_attachment(NOTES_TXT, maintype="text", subtype="plain", filename="notes.txt")
    return _bytes(msg)


DARK_AWARE_HTML = """\
<!doctype html><html><head>
<meta name="color-scheme" content="light dark">
<style>
  body { background: #ffffff; color: #111111; font-family: Arial, sans-serif; }
  .box { border: 2px solid #cccccc; padding: 16px; }
  @media (prefers-color-scheme: dark) {
    body { background: #101418; color: #e6e6e6; }
    .box { border-color: #445566; }
  }
</style></head><body><div class="box"><h2>Dark-aware mail</h2>
<p>This mail declares that it supports dark mode.</p></div></body></html>
"""


def dark_aware_mail(to: str, subject: str = "Dark-aware") -> bytes:
    msg = _base(to, subject, "Night Owl <owl@night.example>")
    msg.set_content("Dark-aware mail (text part).\n")
    msg.add_alternative(DARK_AWARE_HTML, subtype="html")
    return _bytes(msg)


def hostile_subject_mail(to: str) -> bytes:
    """Subject, display name and file name that would run if they reached innerHTML."""
    msg = _base(to, "<img src=x onerror=\"document.title='pwned'\"> Hi", "x@evil.example")
    msg.replace_header("From", '"<b onmouseover=alert(1)>Eve</b>" <eve@evil.example>')
    msg.set_content("hello\n")
    msg.add_attachment(
        b"data", maintype="application", subtype="octet-stream",
        filename='<img src=x onerror="alert(1)">.bin',
    )  # fmt: skip
    return _bytes(msg)
