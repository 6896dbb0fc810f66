"""Pure MIME parsing: the raw bytes of a mail in, the ``schemas.mail`` model out.

    from mail import parse

    result = parse(raw)           # never raises
    result.mail                   # schemas.mail.ParsedMail
    result.attachment_data[i]     # the decoded bytes of result.mail.attachments[i]

No I/O and nothing of ours but ``schemas/`` is imported. Headers are read as
``policy.default`` reads them (RFC 2047 encoded words, raw UTF-8 as RFC 6532 allows,
RFC 2231 parameters), the structure as the stdlib's feed parser splits it, in pure
Python at about 20 times ``policy.default``'s speed (``python -m bench.parse``).
Every input is bounded in time: depth and part count (``_mime.MAX_DEPTH``,
``_mime.MAX_PARTS``), header sizes (``_parse.HEADER_VALUE_CHARS``) and a linear scan
for the HTML preview (``_html_text``). ``PARSER_VERSION`` goes up whenever the same
bytes would be read differently.
"""

from mail._parse import PARSER_VERSION, ParsedResult, parse

__all__ = ["PARSER_VERSION", "ParsedResult", "parse"]
