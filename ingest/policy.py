"""SMTP policy, pure: which recipients we accept, the replies we give, our Received: line.

Replies are exact RFC 5321 codes with RFC 3463 enhanced status codes:

* 5xx only for what the client got wrong (a domain we do not serve, a bad address);
* 4xx for what we could not do (the broker did not acknowledge): the client retries.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from schemas.keys import AddressError, normalise_address

OK_QUEUED = "250 2.0.0 OK: queued as {ingest_id}"
OK_RCPT = "250 2.1.5 Recipient OK"
REFUSED_DOMAIN = "550 5.7.1 Relaying denied: we do not accept mail for {domain}"
BAD_ADDRESS = "553 5.1.3 Bad recipient address syntax"
TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
NOT_STORED = "451 4.3.0 Temporary failure: mail not stored, try again later"
NO_RECIPIENTS = "554 5.5.1 No valid recipients"

MAX_RECIPIENTS = 100


def check_recipient(address: str, domains: list[str], accepted_so_far: int) -> str | None:
    """Return the refusal for ``RCPT TO:<address>``, or ``None`` to accept it."""
    if accepted_so_far >= MAX_RECIPIENTS:
        return TOO_MANY_RCPTS
    try:
        key = normalise_address(address)
    except AddressError:
        return BAD_ADDRESS
    domain = key.rpartition("@")[2]
    if domain not in domains:
        return REFUSED_DOMAIN.format(domain=_printable(address.rpartition("@")[2]))
    return None


def received_header(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    ingest_id: str,
    recipient: str,
    received_at: datetime,
) -> bytes:
    """The ``Received:`` trace line we prepend to each record (RFC 5321 section 4.4)."""
    line = (
        f"Received: from {_printable(helo) or 'unknown'} ([{client_ip}])\r\n"
        f"\tby {hostname} (tmpmail) with {protocol} id {ingest_id}\r\n"
        f"\tfor <{_printable(recipient)}>; {format_datetime(received_at)}\r\n"
    )
    return line.encode("utf-8", "replace")


def protocol_name(*, esmtp: bool, tls: bool, smtputf8: bool) -> str:
    """The ``with`` clause: SMTP, ESMTP, ESMTPS, UTF8SMTP or UTF8SMTPS (RFC 3848, 6531)."""
    if smtputf8:
        return "UTF8SMTPS" if tls else "UTF8SMTP"
    if not esmtp:
        return "SMTP"
    return "ESMTPS" if tls else "ESMTP"


def _printable(text: str) -> str:
    """Keep a client-supplied string from breaking our header or reply lines."""
    return "".join(ch if ch.isprintable() and ch not in "<>;" else "?" for ch in text)[:255]
