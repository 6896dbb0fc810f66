"""``mail.parse`` against the stdlib's ``policy.default`` over every corpus file.

Compared wherever ``policy.default`` reads a field cleanly:

* Subject: ``str(msg["subject"])`` with white space runs as one space and the ends
  stripped (we show the subject on one line; ``policy.default`` keeps the folding
  white space); a subject longer than our 4096-character cap is compared as a prefix.
  Not compared: a subject where ``policy.default`` put more U+FFFD than the raw bytes
  hold, i.e. it replaced bytes it could not decode (unstructured headers never carry
  defects there, so this is the only sign). There we only check that we replaced no
  more than it did.
* From, To, Cc, Reply-To: each address (``addr_spec``, IDN labels shown decoded) and
  its display name, where the header has no defects. One deliberate difference: white
  space between two adjacent encoded words of a display name, which RFC 2047 (6.2)
  says to drop and ``policy.default`` keeps ("MySurvey .com & C arol").
* Date: ``msg["date"].datetime`` where it has no defects; ``-0000`` (naive there) is
  UTC here. Equal instants and equal UTC offsets.

A field absent for ``policy.default`` must be absent here too.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass, field
from datetime import UTC
from email.parser import BytesParser
from pathlib import Path

import pytest

from mail import parse
from tests.mail.support import CORPUS, CORPUS_FILES, check_result, corpus_id

SUBJECT_CAP = 4096
_WS = re.compile(r"[ \t\r\n\x0b\x0c]+")
_ADJACENT_ENCODED_WORDS = re.compile(r"\?=[ \t\r\n]+=\?")
ADDRESS_FIELDS = (("from", "from_"), ("to", "to"), ("cc", "cc"), ("reply-to", "reply_to"))


def norm(text: str) -> str:
    return _WS.sub(" ", text).strip(" ")


def idn_shown(domain: str) -> str:
    labels = []
    for label in domain.split("."):
        if label.lower().startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except UnicodeError:
                pass
        labels.append(label)
    return ".".join(labels)


@dataclass
class Comparison:
    compared: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    deviations: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def count(self, kind: str, what: str) -> None:
        table = self.compared if kind == "compared" else self.skipped
        table[what] = table.get(what, 0) + 1


def compare(path: Path) -> Comparison:
    raw = path.read_bytes()
    ours = parse(raw).mail
    std = BytesParser(policy=email.policy.default).parsebytes(raw)
    out = Comparison()
    name = corpus_id(path)

    subject = std["subject"]
    if subject is None:
        out.count("compared", "subject (both absent)")
        if ours.subject:
            out.mismatches.append(f"{name}: subject {ours.subject!r}, policy.default none")
    else:
        value = str(subject)
        if value.count("\ufffd") > raw.count("\ufffd".encode()):
            out.count("skipped", "subject (policy.default replaced undecodable bytes)")
            if ours.subject.count("\ufffd") > value.count("\ufffd"):
                out.mismatches.append(f"{name}: subject {ours.subject!r} lossier than {value!r}")
            else:
                out.deviations.append(f"{name}: subject {ours.subject!r} for {value!r}")
        else:
            expected = norm(value)
            if len(expected) > SUBJECT_CAP:
                expected = expected[:SUBJECT_CAP]
                out.count("compared", "subject (as a 4096-character prefix)")
            else:
                out.count("compared", "subject")
            if ours.subject != expected:
                out.mismatches.append(f"{name}: subject {ours.subject!r} != {expected!r}")

    for header, attr in ADDRESS_FIELDS:
        mine = [(a.name, a.address) for a in getattr(ours, attr)]
        value = std[header]
        if value is None:
            out.count("compared", f"{header} (both absent)")
            if mine:
                out.mismatches.append(f"{name}: {header} {mine}, policy.default none")
            continue
        if value.defects:
            out.count("skipped", f"{header} (policy.default defects)")
            continue
        wanted: list[tuple[str, str]] = []
        for address in value.addresses:
            spec = address.addr_spec
            if address.domain:
                spec = spec[: len(spec) - len(address.domain)] + idn_shown(address.domain)
            wanted.append((norm(address.display_name), spec))
        out.count("compared", f"{header} addresses")
        if [a for _, a in mine] != [a for _, a in wanted]:
            out.mismatches.append(f"{name}: {header} {mine} != {wanted}")
            continue
        for (got, _), (want, _) in zip(mine, wanted, strict=True):
            out.count("compared", f"{header} display names")
            if got == want:
                continue
            raw_value = raw_header(raw, header)
            if (
                _ADJACENT_ENCODED_WORDS.search(raw_value)
                and got.replace(" ", "") == want.replace(" ", "")
                and len(got) < len(want)
            ):
                out.deviations.append(f"{name}: {header} name {got!r}, policy.default {want!r}")
            else:
                out.mismatches.append(f"{name}: {header} name {got!r} != {want!r}")

    date = std["date"]
    if date is None:
        out.count("compared", "date (both absent)")
        if ours.date is not None:
            out.mismatches.append(f"{name}: date {ours.date}, policy.default none")
    elif date.defects:
        out.count("skipped", "date (policy.default defects)")
    else:
        want = date.datetime
        if want.tzinfo is None:
            want = want.replace(tzinfo=UTC)
        out.count("compared", "date")
        if ours.date != want or ours.date is None or ours.date.utcoffset() != want.utcoffset():
            out.mismatches.append(f"{name}: date {ours.date} != {want}")
    return out


def raw_header(raw: bytes, name: str) -> str:
    """The first ``name`` field of the header block, unfolded (for the deviation rule)."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0].decode("utf-8", "replace")
    m = re.search(rf"(?im)^{re.escape(name)}:(.*(?:\r?\n[ \t].*)*)", head)
    return m.group(1) if m else ""


def test_the_corpus_is_there() -> None:
    assert len(CORPUS_FILES) == 174, f"expected the shared corpus at {CORPUS}"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=corpus_id)
def test_fields_match_policy_default(path: Path) -> None:
    result = compare(path)
    assert result.mismatches == []


@pytest.mark.parametrize("path", CORPUS_FILES, ids=corpus_id)
def test_every_corpus_file_parses_into_a_valid_result(path: Path) -> None:
    check_result(parse(path.read_bytes()))


def test_how_much_was_compared() -> None:
    """The comparison is not vacuous; ``pytest -s`` prints the tally."""
    total = Comparison()
    for path in CORPUS_FILES:
        one = compare(path)
        for what, n in one.compared.items():
            total.compared[what] = total.compared.get(what, 0) + n
        for what, n in one.skipped.items():
            total.skipped[what] = total.skipped.get(what, 0) + n
        total.deviations += one.deviations
        total.mismatches += one.mismatches
    print("\ncompared with policy.default:")
    for what, n in sorted(total.compared.items()):
        print(f"  {n:4d} {what}")
    print("not compared:")
    for what, n in sorted(total.skipped.items()):
        print(f"  {n:4d} {what}")
    print("deliberate differences:")
    for line in total.deviations:
        print(f"  {line}")
    assert total.mismatches == []
    assert total.compared.get("subject", 0) >= 150
    assert total.compared.get("from addresses", 0) >= 150
    assert total.compared.get("date", 0) >= 140
    # The RFC 2047 display-name rule and the lossy subjects are the only differences.
    assert len(total.deviations) <= 6
