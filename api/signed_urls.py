"""Short-lived signed URLs: a credential for one message resource that needs no cookie.

The page shows a message's HTML in ``<iframe sandbox>``, whose origin is opaque: the
browser sends it no cookie (``SameSite=Strict``) and it cannot add a header. So an
authenticated call (``GET /api/messages/{id}/html-url``) issues a URL that carries an
HMAC-SHA256 over the mailbox (its address and id), the message id, the resource and its
options, and the expiry; the URL never carries the token.

The key is ``TMPMAIL_URL_SECRET``; when unset each process makes a random one at start,
which is right for one API process. Several replicas behind one site need it set (the
same value everywhere), or a URL issued by one is refused by the others. A mailbox taken
over by a new owner has a new id, so URLs issued to the previous owner stop working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.settings import Settings
from store import Mailbox

#: How long a signed URL works.
SIGNED_URL_TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class UrlSigner:
    key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlSigner:
        secret = settings.url_secret
        if secret is None:
            return cls(secrets.token_bytes(32))
        return cls(hashlib.sha256(secret.get_secret_value().encode()).digest())

    def sign(self, mailbox: Mailbox, message_id: str, resource: str, expires: int) -> str:
        message = "\x00".join(
            (mailbox.address, mailbox.id, message_id, resource, str(expires))
        ).encode()
        mac = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(
        self,
        mailbox: Mailbox,
        message_id: str,
        resource: str,
        expires: int,
        sig: str,
        now: datetime,
    ) -> bool:
        """Whether ``sig`` is ours for exactly these values and ``expires`` is still ahead."""
        if expires <= int(now.timestamp()):
            return False
        return hmac.compare_digest(self.sign(mailbox, message_id, resource, expires), sig)


def expiry(now: datetime) -> int:
    """The Unix time a URL issued ``now`` stops working."""
    return int((now + SIGNED_URL_TTL).timestamp())
