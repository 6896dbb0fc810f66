"""Bytes to text under a declared charset, never raising.

Mail declares charsets that Python does not know (``x-unknown``), that are no text
codec at all (``base64``), whose decoder raises whatever the error handler
(``idna``, ``undefined``), and charsets that lie (``us-ascii`` over UTF-8 or
windows-1252 bytes, ``gb2312`` over GBK). :func:`decode` tries the declared codec
strictly, then its usual superset, then UTF-8, and only then decodes with
replacement, in whichever of the declared codec, UTF-8 and windows-1252 fits; every
fallback is reported through ``errors``.
"""

from __future__ import annotations

import codecs
import functools
import re

#: Labels seen in mail that Python's codec registry lacks, or names wrongly.
_ALIASES = {
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "windows-874": "cp874",
    "x-sjis": "cp932",
    "x-gbk": "gbk",
    "x-euc-jp": "euc_jp",
    "unicode-1-1-utf-8": "utf-8",
    "utf8mb4": "utf-8",
    "x-mac-roman": "mac-roman",
    "ansi_x3.4-1968": "ascii",
    "ansi_x3.4-1986": "ascii",
}
#: Labels that mean "we do not know": read like an undeclared part.
_UNKNOWN = frozenset(
    {"", "unknown", "unknown-8bit", "x-unknown", "default", "x-user-defined", "charset", "none"}
)
#: Codecs that are text codecs by Python's registry but no charset a mail can use:
#: their decoders raise whatever the error handler, or interpret escapes.
_REFUSED = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "mbcs", "oem"}
)
#: When the declared codec fails, the superset that mailers mean by it.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "iso2022_jp": "iso2022_jp_ext",
}
#: Multi-byte codecs: windows-1252 over their bytes would be mojibake, so their own
#: decoder with replacement is the better last resort.
_MULTIBYTE = frozenset(
    {
        "gb2312",
        "gbk",
        "gb18030",
        "hz",
        "big5",
        "big5hkscs",
        "cp950",
        "shift_jis",
        "cp932",
        "shift_jis_2004",
        "shift_jisx0213",
        "euc_jp",
        "euc_jis_2004",
        "euc_jisx0213",
        "euc_kr",
        "cp949",
        "johab",
        "iso2022_jp",
        "iso2022_jp_1",
        "iso2022_jp_2",
        "iso2022_jp_3",
        "iso2022_jp_ext",
        "iso2022_jp_2004",
        "iso2022_kr",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        "utf-7",
    }
)
#: Codecs under which bytes below 0x80 are plain ASCII, so an ASCII-only payload can
#: skip the codec (ISO-2022, UTF-7/16/32 and the like are not among them).
_ASCII_SAFE_PREFIXES = ("iso8859-", "cp125", "mac-", "koi8", "latin")
_ASCII_SAFE = frozenset(
    {"ascii", "utf-8", "utf-8-sig", "gb2312", "gbk", "gb18030", "big5", "big5hkscs", "cp950"}
    | {"euc_jp", "euc_kr", "cp949", "cp874", "cp1252", "iso8859-1"}
)

#: Decoders that can return lone surrogates, which JSON and BSON cannot carry.
_SURROGATES_POSSIBLE = frozenset({"utf-7"})
_SURROGATE = re.compile("[\ud800-\udfff]")

#: Longest charset label looked up; longer ones are junk.
_LABEL_CHARS = 64


def codec_for(label: str | None) -> str | None:
    """Python's codec name for a charset label, or None when it is unknown or refused."""
    return _lookup(label) if label else None


@functools.lru_cache(maxsize=512)
def _lookup(label: str) -> str | None:
    key = label.strip().strip("\"'").lower()
    if len(key) > _LABEL_CHARS or key in _UNKNOWN:
        return None
    key = _ALIASES.get(key, key)
    try:
        info = codecs.lookup(key)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    name = info.name
    if name.replace("_", "-") in _REFUSED:
        return None
    return name


def is_ascii_safe(codec: str) -> bool:
    return codec in _ASCII_SAFE or codec.startswith(_ASCII_SAFE_PREFIXES)


def decode(data: bytes, label: str | None, errors: list[str], where: str) -> str:
    """``data`` as text under the charset ``label`` (None: undeclared), never raising."""
    codec = codec_for(label)
    shown = (label or "")[:_LABEL_CHARS]
    if codec is None:
        if shown and shown.strip().lower() not in _UNKNOWN:
            errors.append(f"{where}: unknown or unusable charset {shown!r}")
        return decode_undeclared(data, errors, where)
    if data.isascii() and is_ascii_safe(codec):
        return data.decode("ascii")
    try:
        text = data.decode(codec)
        return _SURROGATE.sub("\ufffd", text) if codec in _SURROGATES_POSSIBLE else text
    except UnicodeDecodeError:
        pass
    except Exception:  # a codec that misbehaves on this input: treat as undecodable
        pass
    superset = _SUPERSETS.get(codec)
    if superset is not None:
        try:
            return data.decode(superset)
        except UnicodeDecodeError:
            pass
    if codec != "utf-8":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            errors.append(f"{where}: bytes are not {shown}; read as utf-8")
            return text
    if codec in _MULTIBYTE:
        errors.append(f"{where}: undecodable bytes in {shown}; replaced")
        return _replace(data, superset or codec)
    if codec == "utf-8":
        return _utf8_or_1252(data, errors, where)
    if codec == "ascii":
        errors.append(f"{where}: 8-bit bytes under {shown}; read as windows-1252")
        return data.decode("cp1252", "replace")
    errors.append(f"{where}: undecodable bytes in {shown}; replaced")
    return _replace(data, codec)


def decode_undeclared(data: bytes, errors: list[str], where: str) -> str:
    """Bytes with no charset (raw 8-bit headers, RFC 6532): UTF-8, else the better of
    UTF-8 with replacement and windows-1252."""
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _utf8_or_1252(data, errors, where)


def _utf8_or_1252(data: bytes, errors: list[str], where: str) -> str:
    as_utf8 = data.decode("utf-8", "replace")
    bad = as_utf8.count("\ufffd")
    good = len(as_utf8) - len(as_utf8.encode("ascii", "ignore")) - bad
    if good > bad:
        errors.append(f"{where}: invalid utf-8; replaced")
        return as_utf8
    errors.append(f"{where}: 8-bit bytes that are not utf-8; read as windows-1252")
    return data.decode("cp1252", "replace")


def _replace(data: bytes, codec: str) -> str:
    try:
        text = data.decode(codec, "replace")
    except Exception:  # a decoder that refuses "replace"
        return data.decode("utf-8", "replace")
    return _SURROGATE.sub("\ufffd", text) if codec in _SURROGATES_POSSIBLE else text
