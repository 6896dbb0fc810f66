"""Parsing speed on one core: ``mail.parse`` beside the stdlib's two policies.

Run it from the checkout (about a minute):

    .venv/bin/python -m bench.parse
    .venv/bin/python -m bench.parse --seconds 1 --corpus ../shared/corpus

(``.venv/bin/python bench/parse.py`` works too.)

It pins itself to one CPU and prints mails/s for two workloads:

* typical: distinct 5 KB multipart/alternative mails (text and HTML, quoted-printable,
  an encoded subject, Received and DKIM headers), made here with a fixed seed;
* corpus: every file of the shared corpus in turn (its mix of small mails and MB
  attachments), and the slowest corpus file with its time.

The references do comparable work: ``policy.default`` parses and reads subject, from,
to, date, the text and HTML bodies (``get_body``) and the attachments' bytes;
compat32 (``message_from_bytes``) reads the same with ``email.header`` decoding and
``get_payload(decode=True)``. Each figure is the best of ``--rounds`` rounds of about
``--seconds`` seconds. ``make bench`` (:mod:`bench.run`) calls :func:`measure`, which
returns the figures too.
"""

from __future__ import annotations

import argparse
import email
import email.header
import email.policy
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mail import parse

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
SKIPPED = {"LICENSE", "NOTICE", "README.md", ".gitattributes"}

_WORDS = (
    "account update weekly digest order shipped invoice meeting notes project review "
    "team schedule reminder please confirm your address thanks regards offer limited "
    "time new items report summary attached details link below click here support "
    "question answer release changes security notice password reset welcome"
).split()


def typical_mails(count: int, seed: int = 5) -> list[bytes]:
    """``count`` distinct multipart/alternative mails of about 5 KB."""
    rng = random.Random(seed)
    return [_typical(rng, n) for n in range(count)]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _qp(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        while len(line) > 75:
            cut = line.rfind(" ", 0, 74)
            cut = 74 if cut <= 0 else cut
            lines.append(line[:cut] + "=")
            line = line[cut:]
        lines.append(line)
    return "\r\n".join(lines)


def _typical(rng: random.Random, n: int) -> bytes:
    boundary = f"b1_{rng.getrandbits(64):016x}{n:06d}"
    paragraphs = [_sentence(rng, rng.randint(14, 30)) for _ in range(10)]
    text = "\n\n".join(paragraphs) + "\n\n-- \nThe Example Team\n"
    html = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Digest</title>'
        "<style>body{font-family:sans-serif}p{margin:0 0 1em}</style></head><body>"
        + "".join(f'<p style=3D"color:#333">{p}</p>\n' for p in paragraphs)
        + '<p><a href=3D"https://example.com/u/abc">Unsubscribe</a></p></body></html>'
    )
    dkim_b = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop0123456789") for _ in range(340)
    )
    headers = [
        "Received: from mail-out.example.com (mail-out.example.com [203.0.113.5])\r\n"
        "\tby mx.tmpmail.test with ESMTPS id 4F2A1C0E; Tue, 03 Dec 2026 10:00:00 +0000",
        "Received: by mail-out.example.com with SMTP id q7so1234; Tue, 03 Dec 2026 02:00:00 -0800",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;\r\n"
        "\th=from:to:subject:date:message-id:mime-version;\r\n"
        "\tbh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;\r\n"
        + "".join(
            f"\t{'b=' if i == 0 else ''}{dkim_b[i : i + 70]}\r\n" for i in range(0, 340, 70)
        ).rstrip("\r\n"),
        '"Example Newsletter" <news@example.com>'.join(("From: ", "")),
        f"To: user{n}@tmpmail.test",
        f"Subject: =?UTF-8?Q?Your_weekly_digest_=E2=80=93_{n}_new_items?=",
        "Date: Tue, 03 Dec 2026 10:00:00 +0000",
        f"Message-ID: <{rng.getrandbits(80):020x}@example.com>",
        "MIME-Version: 1.0",
        "List-Unsubscribe: <https://example.com/u/abc>, <mailto:unsub@example.com>",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    body = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{_qp(text)}\r\n"
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{_qp(html)}\r\n"
        f"--{boundary}--\r\n"
    )
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.name not in SKIPPED)


def with_policy_default(raw: bytes) -> object:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    fields = [str(msg.get(name, "")) for name in ("subject", "from", "to", "date")]
    bodies = []
    for kind in ("plain", "html"):
        part = msg.get_body(preferencelist=(kind,))
        if part is not None:
            try:
                bodies.append(part.get_content())
            except Exception:  # LookupError for an unknown charset, and the like
                bodies.append("")
    data = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True)
        data.append(payload if isinstance(payload, bytes) else b"")
    return fields, bodies, data


def with_compat32(raw: bytes) -> object:
    msg = email.message_from_bytes(raw)
    fields = [_decoded(msg.get(name)) for name in ("subject", "from", "to", "date")]
    texts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment":
            texts.append(payload.decode(_charset(part), "replace"))
    return fields, texts


def _charset(part: Message) -> str:
    name = part.get_content_charset() or "utf-8"
    try:
        "".encode(name)
        b"".decode(name, "replace")
    except (LookupError, UnicodeError):
        return "utf-8"
    return name


def _decoded(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except Exception:
        return str(value)


def rate(
    fn: Callable[[bytes], object], mails: Sequence[bytes], seconds: float, rounds: int
) -> float:
    """The best mails/s of ``rounds`` runs of about ``seconds`` each."""
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while True:
            for raw in mails:
                fn(raw)
            done += len(mails)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, done / elapsed)
    return best


def slowest(files: Sequence[Path], repeat: int = 5) -> tuple[Path, float]:
    worst: tuple[Path, float] = (files[0], 0.0)
    for path in files:
        raw = path.read_bytes()
        best = min(_timed(raw) for _ in range(repeat))
        if best > worst[1]:
            worst = (path, best)
    return worst


def _timed(raw: bytes) -> float:
    start = time.perf_counter()
    parse(raw)
    return time.perf_counter() - start


def pin_to_one_cpu() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return "not pinned"
    return f"pinned to CPU {cpu}"


PARSERS: dict[str, Callable[[bytes], object]] = {
    "mail.parse": parse,
    "policy.default": with_policy_default,
    "compat32": with_compat32,
}


def measure(
    seconds: float = 2.0,
    rounds: int = 3,
    mails: int = 2000,
    corpus_dir: Path = DEFAULT_CORPUS,
    parsers: Sequence[str] = tuple(PARSERS),
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Each parser's mails/s on the typical mails and over the corpus, on one CPU.

    This thread is pinned to one CPU for the measurement and given its CPUs back after,
    so that a caller (``bench.run``) keeps its own. ``say`` gets each line as it comes.
    """
    before = _affinity()
    pinned = pin_to_one_cpu()
    try:
        say(f"Python {sys.version.split()[0]}, {pinned}")
        typical = typical_mails(mails)
        size = sum(map(len, typical)) / len(typical)
        say(
            f"typical: {len(typical)} multipart/alternative mails, {size / 1024:.1f} KiB on average"
        )
        files = corpus_files(corpus_dir) if corpus_dir.is_dir() else []
        corpus = [p.read_bytes() for p in files]
        if corpus:
            mean = sum(map(len, corpus)) / len(corpus)
            say(f"corpus: {len(corpus)} files of {corpus_dir}, {mean / 1024:.1f} KiB on average")
        else:
            say(f"corpus: none at {corpus_dir}")
        result: dict[str, Any] = {
            "pinned": pinned,
            "typical_mails": len(typical),
            "typical_kib": round(size / 1024, 2),
            "corpus": str(corpus_dir),
            "corpus_files": len(corpus),
            "seconds": seconds,
            "rounds": rounds,
            "parsers": {},
        }
        say(f"{'parser':<16} {'typical mails/s':>16} {'corpus mails/s':>16}")
        for name in parsers:
            fn = PARSERS[name]
            typical_rate = rate(fn, typical, seconds, rounds)
            corpus_rate = rate(fn, corpus, seconds, rounds) if corpus else None
            result["parsers"][name] = {
                "typical_per_s": round(typical_rate, 1),
                "corpus_per_s": None if corpus_rate is None else round(corpus_rate, 1),
            }
            say(f"{name:<16} {typical_rate:>16,.0f} {corpus_rate or 0:>16,.0f}")
        if files:
            path, took = slowest(files)
            result["slowest"] = {
                "file": str(path.relative_to(corpus_dir)),
                "kib": round(path.stat().st_size / 1024, 1),
                "ms": round(took * 1000, 3),
            }
            say(
                f"slowest corpus file for mail.parse: {path.relative_to(corpus_dir)} "
                f"({path.stat().st_size / 1024:.0f} KiB) in {took * 1000:.2f} ms"
            )
        return result
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (best one)")
    parser.add_argument("--mails", type=int, default=2000, help="distinct typical mails")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    measure(args.seconds, args.rounds, args.mails, args.corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
