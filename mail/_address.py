"""Address lists (RFC 5322 ``From``, ``To``, ``Cc``, ``Reply-To``), leniently.

On well-formed input the result is what ``policy.default`` reads: the same address
(local part re-quoted when it needs quotes) and display name. Where the two differ on
purpose: white space between two encoded words of a display name is dropped (RFC 2047
section 6.2; ``policy.default`` keeps it), encoded words inside quotes are decoded,
IDN domains (``xn--`` labels) are shown decoded, a display name that is itself an
address (``a@b <a@b>``) is kept, and white space runs come out as one space.

Everything is linear in the length of the (capped) value: one regular-expression
scan makes the tokens, and comments are skipped by a counter, not by recursion.
"""

from __future__ import annotations

import re

from mail import _charset
from mail._header import b_bytes, decode_words, q_bytes
from schemas.mail import MailAddress

#: Addresses read per header; the rest are dropped with a note.
MAX_ADDRESSES = 100

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<ew>=\?[^?\s]*\?[bBqQ]\?[^?]*\?=)
  | (?P<atom>[^ \t\r\n()<>@,;:\\".\[\]]+)
  | (?P<q>"[^"\\]*(?:\\.[^"\\]*)*"?)
  | (?P<lit>\[[^\[\]\\]*(?:\\.[^\[\]\\]*)*\]?)
  | (?P<c>\()
  | (?P<sp>[<>@,;:.])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_COMMENT_SPECIAL = re.compile(r"[()\\]")
#: One mailbox in its most common forms (``a@b``, ``Name <a@b>``, ``"Name" <a@b>``),
#: read in one match; anything else goes through the tokens.
_LOCAL = r"[!#$%&'*+/0-9=?A-Z^_`a-z{|}~-]+(?:\.[!#$%&'*+/0-9=?A-Z^_`a-z{|}~-]+)*"
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_ATOM = r"[^\"\\()<>@,;:.\[\]=\s]+"
_BARE_ADDR = re.compile(rf"[ \t]*({_LOCAL})@({_DOMAIN})[ \t]*\Z")
_NAME_ADDR = re.compile(
    rf'[ \t]*(?:"([^"\\=]*)"|({_ATOM}(?:[ \t]+{_ATOM})*))?[ \t]*<({_LOCAL})@({_DOMAIN})>[ \t]*\Z'
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_QUOTED_INNER = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)', re.DOTALL)
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_WS = re.compile(r"[ \t\r\n\x0b\x0c]+")
#: Characters that make a local part need quotes (``policy.default``'s DOT_ATOM_ENDS).
_NEEDS_QUOTES = frozenset('()<>@,:;"[]\\ \t')

Token = tuple[str, str]


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup or "other"
        if kind == "c":
            pos = _skip_comment(text, pos + 1)
            kind = "ws"
        else:
            pos = m.end()
        if kind == "ws":
            if tokens and tokens[-1][0] == "ws":
                continue
            tokens.append(("ws", " "))
        else:
            tokens.append((kind, m.group()))
    return tokens


def _skip_comment(text: str, pos: int) -> int:
    depth = 1
    n = len(text)
    while pos < n:
        m = _COMMENT_SPECIAL.search(text, pos)
        if m is None:
            return n
        ch = m.group()
        pos = m.end()
        if ch == "\\":
            pos += 1
        elif ch == "(":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos
    return n


def parse_addresses(text: str, errors: list[str], where: str) -> list[MailAddress]:
    """The mailboxes of an address list, groups flattened, in order."""
    simple = _NAME_ADDR.match(text)
    if simple is not None:
        quoted, atoms, local, domain = simple.groups()
        name = _collapse(quoted if quoted is not None else atoms or "")
        return [MailAddress(name=name, address=local + "@" + display_domain(domain))]
    simple = _BARE_ADDR.match(text)
    if simple is not None:
        return [MailAddress(address=simple.group(1) + "@" + display_domain(simple.group(2)))]
    tokens = tokenize(text)
    out: list[MailAddress] = []
    n = len(tokens)
    i = 0
    in_group = False
    while i < n:
        kind, value = tokens[i]
        if kind == "ws" or (kind == "sp" and value == ","):
            i += 1
            continue
        if kind == "sp" and value == ";":
            if not in_group:
                errors.append(f"{where}: stray ';'")
            in_group = False
            i += 1
            continue
        if len(out) >= MAX_ADDRESSES:
            errors.append(f"{where}: more than {MAX_ADDRESSES} addresses; the rest dropped")
            break
        j = _find_special(tokens, i, "<>@,;:")
        stop = tokens[j][1] if j < n else ""
        if stop == ":" and not in_group:
            in_group = True  # a group: its display name is not kept
            i = j + 1
            continue
        if stop == "<":
            name = phrase_text(tokens[i:j], errors, where)
            address, i = _angle_addr(tokens, j, errors, where)
            if name or address:
                out.append(MailAddress(name=name, address=address))
            i = _skip_junk(tokens, i, errors, where)
            continue
        if stop == "@":
            k = _find_special(tokens, j + 1, "<>,;")
            if k < n and tokens[k][1] == "<":
                # "a@b <a@b>": an address written as the display name.
                errors.append(f"{where}: an address as the display name")
                name = _collapse("".join(v for _, v in tokens[i:k]))
                address, i = _angle_addr(tokens, k, errors, where)
                out.append(MailAddress(name=name, address=address))
            else:
                out.append(MailAddress(address=addr_spec(tokens[i:k])))
                i = k
            i = _skip_junk(tokens, i, errors, where)
            continue
        # A phrase with no address: a bare local part ("root"), or a name alone.
        phrase = tokens[i:j]
        words = [v for kk, v in phrase if kk != "ws"]
        if stop == ">":
            errors.append(f"{where}: stray '>'")
            j += 1
        if words:
            errors.append(f"{where}: no address in {_collapse(''.join(words))[:80]!r}")
            if (
                len(words) == 1
                and phrase[0][0] != "q"
                and not any(k == "ws" for k, _ in phrase[1:-1])
            ):
                out.append(MailAddress(address=words[0]))
            else:
                out.append(MailAddress(name=phrase_text(phrase, errors, where)))
        i = max(j, i + 1)
    return out


def _find_special(tokens: list[Token], i: int, specials: str) -> int:
    n = len(tokens)
    while i < n:
        kind, value = tokens[i]
        if kind == "sp" and value in specials:
            return i
        i += 1
    return n


def _angle_addr(tokens: list[Token], j: int, errors: list[str], where: str) -> tuple[str, int]:
    """The address inside the '<' at ``j``, and the index after its '>'."""
    n = len(tokens)
    k = _find_special(tokens, j + 1, "<>;")  # never past the next address
    if k < n and tokens[k][1] == ">":
        end = k + 1
    else:
        errors.append(f"{where}: missing '>'")
        k = end = min(k, _find_special(tokens, j + 1, ","))
    inner = tokens[j + 1 : k]
    # An obsolete route (<@a,@b:user@host>): only what follows its ':' is the address.
    for idx in range(len(inner) - 1, -1, -1):
        if inner[idx] == ("sp", ":"):
            inner = inner[idx + 1 :]
            break
    return addr_spec(inner), end


def _skip_junk(tokens: list[Token], i: int, errors: list[str], where: str) -> int:
    n = len(tokens)
    while i < n and tokens[i][0] == "ws":
        i += 1
    if i < n and not (tokens[i][0] == "sp" and tokens[i][1] in ",;"):
        errors.append(f"{where}: text after an address")
        i = _find_special(tokens, i, ",;")
    return i


def addr_spec(tokens: list[Token]) -> str:
    """``local@domain`` from the tokens of an addr-spec (white space and comments
    dropped, quotes taken off and put back only where the local part needs them)."""
    local: list[str] = []
    domain: list[str] = []
    seen_at = False
    for kind, value in tokens:
        if kind == "ws":
            continue
        if not seen_at and kind == "sp" and value == "@":
            seen_at = True
        elif seen_at:
            domain.append("".join(value.split()) if kind == "lit" else value)
        elif kind == "q":
            local.append(_unquote(value))
        else:
            local.append(value)
    lp = "".join(local)
    if lp and not _NEEDS_QUOTES.isdisjoint(lp):
        lp = '"' + lp.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not domain:
        return lp
    if not lp:
        lp = '""'
    return lp + "@" + display_domain("".join(domain))


def display_domain(domain: str) -> str:
    """``domain`` with its IDNA (``xn--``) labels shown in Unicode."""
    if "xn--" not in domain.lower():
        return domain
    labels = domain.split(".")
    for idx, label in enumerate(labels):
        if label[:4].lower() == "xn--" and label.isascii():
            try:
                labels[idx] = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
    return ".".join(labels)


def phrase_text(tokens: list[Token], errors: list[str], where: str) -> str:
    """A display name: words joined by single spaces, quotes and encoded words
    decoded; no space between two encoded words, adjacent words of one charset
    decoded together."""
    parts: list[str] = []
    run_label: str | None = None
    run: list[bytes] = []
    pending_space = False
    for kind, value in tokens:
        if kind == "ws":
            pending_space = True
            continue
        if kind == "ew":
            m = _ENCODED_WORD.match(value)
            assert m is not None
            label = m.group(1).partition("*")[0]
            data = _ew_bytes(m, errors, where)
            if run_label is not None and label.lower() == run_label.lower():
                run.append(data)
                pending_space = False
                continue
            if run_label is not None:
                parts.append(_charset.decode(b"".join(run), run_label, errors, where))
                if pending_space:
                    parts.append(" ")
            elif pending_space and parts:
                parts.append(" ")
            run_label, run = label, [data]
            pending_space = False
            continue
        if run_label is not None:
            parts.append(_charset.decode(b"".join(run), run_label, errors, where))
            run_label = None
        if pending_space and parts:
            parts.append(" ")
        pending_space = False
        if kind == "q":
            text = _unquote(value)
            parts.append(decode_words(text, errors, where) if "=?" in text else text)
        else:
            parts.append(value)
    if run_label is not None:
        parts.append(_charset.decode(b"".join(run), run_label, errors, where))
    return _collapse("".join(parts))


def _ew_bytes(m: re.Match[str], errors: list[str], where: str) -> bytes:
    if m.group(2) in "qQ":
        return q_bytes(m.group(3))
    return b_bytes(m.group(3), errors, where)


def _unquote(quoted: str) -> str:
    m = _QUOTED_INNER.match(quoted)
    inner = m.group(1) if m is not None else quoted[1:]
    return _QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner


def _collapse(text: str) -> str:
    return _WS.sub(" ", text).strip(" ")
