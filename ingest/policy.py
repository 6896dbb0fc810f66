"""SMTP policy, pure: the replies we give, what we accept, how commands are read, our
``Received:`` line.

Replies are exact RFC 5321 codes with RFC 3463 enhanced status codes (RFC 2034: every
reply but the greeting and the answer to EHLO/HELO carries one):

* 5xx only for what the client got wrong (a domain we do not serve, a bad address, a
  mail too big): it must not retry as it is;
* 4xx for what we could not do (the broker did not acknowledge) or for a limit the
  client may meet later (too many connections): the client retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from schemas.keys import AddressError, normalise_address

# --- replies -------------------------------------------------------------------------
GREETING = "220 {hostname} ESMTP tmpmail"
OK = "250 2.0.0 OK"
OK_SENDER = "250 2.1.0 Sender OK"
OK_RCPT = "250 2.1.5 Recipient OK"
OK_QUEUED = "250 2.0.0 OK: queued as {ingest_id}"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
START_TLS = "220 2.0.0 Ready to start TLS"
BYE = "221 2.0.0 Bye"
HELP = "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS"
CANNOT_VRFY = "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery"

NOT_STORED = "451 4.3.0 Temporary failure: mail not stored, try again later"
TOO_MANY_CONNECTIONS = "421 4.7.0 {hostname} Too many connections, try again later"
TOO_MANY_FROM_CLIENT = "421 4.7.0 {hostname} Too many connections from your address"
TOO_MANY_ERRORS = "421 4.7.0 {hostname} Too many errors, closing connection"
IDLE_TIMEOUT = "421 4.4.2 {hostname} Timeout, closing connection"
DATA_TIMEOUT = "421 4.4.2 {hostname} DATA took too long, closing connection"
SHUTTING_DOWN = "421 4.3.2 {hostname} Service shutting down, try again later"
TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
OVER_BUDGET_RCPT = "452 4.5.3 Too many recipients for a message of this size"
TLS_UNAVAILABLE = "454 4.7.0 TLS not available"

LINE_TOO_LONG = "500 5.5.2 Line too long"
UNKNOWN_COMMAND = "500 5.5.2 Command not recognized"
SYNTAX_HELO = "501 5.5.4 Syntax: {verb} hostname"
SYNTAX_MAIL = "501 5.5.4 Syntax: MAIL FROM:<address>"
SYNTAX_RCPT = "501 5.5.4 Syntax: RCPT TO:<address>"
SYNTAX_NO_ARGS = "501 5.5.4 Syntax: {verb} takes no arguments"
BAD_UTF8 = "501 5.5.4 Invalid UTF-8 in command"
BAD_SIZE = "501 5.5.4 Syntax: SIZE=<number>"
NOT_IMPLEMENTED = "502 5.5.1 Command not implemented"
NEED_HELO = "503 5.5.1 Send EHLO or HELO first"
NESTED_MAIL = "503 5.5.1 Sender already given"
NEED_MAIL = "503 5.5.1 Need MAIL command"
NEED_RCPT = "503 5.5.1 Need RCPT command"
ALREADY_TLS = "503 5.5.1 TLS already active"
REFUSED_DOMAIN = "550 5.7.1 Relaying denied: we do not accept mail for {domain}"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
OVER_BUDGET_DATA = "552 5.3.4 Message too large for its number of recipients"
BAD_ADDRESS = "553 5.1.3 Bad recipient address syntax"
BAD_SENDER = "553 5.1.7 Bad sender address syntax"
NEEDS_SMTPUTF8 = "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter"
NO_RECIPIENTS = "554 5.5.1 No valid recipients"
BAD_PARAMETER = "555 5.5.4 Unsupported parameter {name}"

#: Reply codes that count against a session's bad-command limit.
BAD_COMMAND_CODES = ("500", "501", "502", "503", "555")

# --- commands ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailParams:
    """The parameters of MAIL FROM we understand (RFC 1870, 6152, 6531)."""

    size: int | None = None
    smtputf8: bool = False
    body: str = "7BIT"


class CommandError(ValueError):
    """A command we cannot take; ``reply`` says why."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def decode_command(line: bytes) -> str:
    """A command line as text: ASCII, or UTF-8 (RFC 6531); anything else is refused."""
    try:
        return line.decode("ascii")
    except UnicodeDecodeError:
        pass
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(BAD_UTF8) from None


def split_path(arg: str, keyword: str) -> tuple[str, list[str]] | None:
    """``FROM:<path> PARAMS`` → (address without brackets, params); None on bad syntax.

    Lenient where real clients are (a space after the colon, no angle brackets, an
    RFC 5321 source route); strict about the keyword.
    """
    head, colon, rest = arg.partition(":")
    if not colon or head.strip().upper() != keyword:
        return None
    rest = rest.lstrip(" ")
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        if end < 0:
            return None
        path, params = rest[1:end], rest[end + 1 :]
        if params and not params.startswith(" "):
            return None
    else:
        path, _, params = rest.partition(" ")
    if path.startswith("@"):  # source route: @a,@b:user@host
        path = path.partition(":")[2]
    return path, params.split()


def _closing_bracket(text: str) -> int:
    """Index of the ``>`` that closes ``text``'s leading ``<``, skipping quoted parts."""
    quoted = escaped = False
    for index, char in enumerate(text[1:], start=1):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def parse_mail_params(params: list[str], *, max_size: int) -> MailParams:
    size: int | None = None
    smtputf8 = False
    body = "7BIT"
    for param in params:
        name, eq, value = param.partition("=")
        key = name.upper()
        if key == "SIZE" and eq:
            if not value.isdigit() or len(value) > 20:
                raise CommandError(BAD_SIZE)
            size = int(value)
            if size > max_size:
                raise CommandError(TOO_BIG)
        elif key == "BODY" and eq and value.upper() in ("7BIT", "8BITMIME"):
            body = value.upper()
        elif key == "SMTPUTF8" and not eq:
            smtputf8 = True
        else:
            raise CommandError(BAD_PARAMETER.format(name=_printable(key)[:32]))
    return MailParams(size=size, smtputf8=smtputf8, body=body)


def check_sender(address: str, *, smtputf8: bool) -> str | None:
    """The refusal for ``MAIL FROM:<address>``, or None. ``<>`` is the null sender."""
    if not address.isascii() and not smtputf8:
        return NEEDS_SMTPUTF8
    if address and ("@" not in address or any(ch.isspace() for ch in address)):
        return BAD_SENDER
    return None


def check_recipient(
    address: str,
    domains: list[str],
    accepted_so_far: int,
    *,
    max_recipients: int,
    smtputf8: bool = False,
    declared_size: int | None = None,
    budget_bytes: int | None = None,
) -> str | None:
    """The refusal for ``RCPT TO:<address>``, or ``None`` to accept it."""
    if accepted_so_far >= max_recipients:
        return TOO_MANY_RCPTS
    if (
        declared_size is not None
        and budget_bytes is not None
        and declared_size * (accepted_so_far + 1) > budget_bytes
    ):
        return OVER_BUDGET_RCPT
    if not address.isascii() and not smtputf8:
        return NEEDS_SMTPUTF8
    try:
        key = normalise_address(address)
    except AddressError:
        return BAD_ADDRESS
    domain = key.rpartition("@")[2]
    if domain not in domains:
        return REFUSED_DOMAIN.format(domain=_printable(address.rpartition("@")[2]))
    return None


def check_data_size(size: int, recipients: int, *, max_bytes: int, budget_bytes: int) -> str | None:
    """The refusal at the end of DATA for a mail of ``size`` bytes, or None."""
    if size > max_bytes:
        return TOO_BIG
    if size * recipients > budget_bytes:
        return OVER_BUDGET_DATA
    return None


def ehlo_lines(hostname: str, *, max_bytes: int, starttls: bool) -> list[str]:
    """The EHLO answer's lines, without codes (the session adds ``250-`` / ``250 ``)."""
    lines = [hostname, f"SIZE {max_bytes}", "8BITMIME", "SMTPUTF8", "PIPELINING"]
    if starttls:
        lines.append("STARTTLS")
    lines += ["ENHANCEDSTATUSCODES", "HELP"]
    return lines


def multiline(code: str, lines: list[str]) -> str:
    """``250-a``, ``250-b``, ``250 c`` joined by CRLF (no trailing CRLF)."""
    last = len(lines) - 1
    return "\r\n".join(f"{code}{' ' if i == last else '-'}{line}" for i, line in enumerate(lines))


# --- our trace line --------------------------------------------------------------------
def received_header(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    ingest_id: str,
    recipient: str | None,
    received_at: datetime,
) -> bytes:
    """The ``Received:`` trace line we prepend (RFC 5321 section 4.4).

    ``for <recipient>`` is given only for a mail with one recipient: the same bytes then
    serve every recipient's record, and no recipient learns of the others.
    """
    for_clause = f"\r\n\tfor <{_printable(recipient)}>" if recipient else ""
    line = (
        f"Received: from {_printable(helo) or 'unknown'} ([{client_ip}])\r\n"
        f"\tby {hostname} (tmpmail) with {protocol} id {ingest_id}{for_clause};\r\n"
        f"\t{format_datetime(received_at)}\r\n"
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
