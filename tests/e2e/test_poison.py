"""Poison, then a normal mail, on the real stack and both stores: the normal mail arrives
within seconds, the poison is stored with its errors (or dropped with a reason), and the
worker stays ready."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from deploy.health import streams_ready
from schemas.settings import Settings
from tests.e2e.helpers import create_mailbox, make_mail, send_raw

NORMAL_WITHIN_S = 15.0


def _poison(kind: str, to: str, subject: str) -> bytes:
    head = f"From: poison@example.org\r\nTo: {to}\r\nMessage-ID: <{uuid.uuid4()}@x>\r\n"
    if kind == "charset-idna":
        return (
            f"{head}Subject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=idna\r\n\r\n\xe9t\xe9 \xff\r\n"
        ).encode("latin-1")
    if kind == "charset-undefined":
        return (
            f"{head}Subject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=undefined\r\n\r\nhello\r\n"
        ).encode()
    if kind == "unclosed-tags":
        html = "<a " * (128 * 1024 // 3)
        return (
            f"{head}Subject: {subject}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
        ).encode()
    if kind == "huge-subject":
        folded = "\r\n ".join(["=?utf-8?q?=C3=A9=C3=A9=C3=A9?="] * 200_000)  # ~6 MiB
        return f"{head}Subject: {subject} {folded}\r\n\r\nbody\r\n".encode()
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind", ["charset-idna", "charset-undefined", "unclosed-tags", "huge-subject"]
)
async def test_a_poison_mail_does_not_stop_the_next_one(stack: Settings, kind: str) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await create_mailbox(client)
        poison_subject = f"poison {kind} {uuid.uuid4().hex[:6]}"
        normal_subject = f"normal after {kind} {uuid.uuid4().hex[:6]}"
        await asyncio.to_thread(
            send_raw, stack, box.address, _poison(kind, box.address, poison_subject)
        )
        await asyncio.to_thread(
            send_raw, stack, box.address, make_mail(box.address, normal_subject)
        )

        async def subjects() -> list[str]:
            response = await client.get("/api/messages", headers=box.auth)
            assert response.status_code == 200, response.text
            return [m["subject"] for m in response.json()["messages"]]

        async with asyncio.timeout(NORMAL_WITHIN_S):
            while normal_subject not in await subjects():  # noqa: ASYNC110 - polling the API
                await asyncio.sleep(0.2)
        listed = (await client.get("/api/messages", headers=box.auth)).json()["messages"]
        poison = [
            m for m in listed if m["subject"].startswith(poison_subject) or m["subject"] == ""
        ]
        assert poison, f"the poison was neither stored nor listed: {listed}"
        assert poison[0]["parse_errors"] or kind != "charset-idna"
        assert len(poison[0]["subject"]) < 64 * 1024  # never a multi-MiB display value
    assert streams_ready(stack)


async def test_every_corpus_mail_is_stored_once_with_the_parsers_fields(stack: Settings) -> None:
    import hashlib
    import re
    from collections import Counter

    from mail import parse
    from tests.mail.support import CORPUS_FILES

    def crlf(data: bytes) -> bytes:
        return re.sub(rb"(?<!\r)\n", b"\r\n", data)

    expected: Counter[tuple[str, str]] = Counter()
    keys: set[tuple[str, str]] = set()
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await create_mailbox(client)
        for path in CORPUS_FILES:
            data = crlf(path.read_bytes())
            data = data if data.endswith(b"\r\n") else data + b"\r\n"
            parsed = parse(data).mail
            key = (parsed.message_id_header, hashlib.sha256(data).hexdigest())
            if parsed.message_id_header and key in keys:
                continue  # the same mail twice: stored once, by design
            keys.add(key)
            expected[(parsed.subject, parsed.sender or "corpus@example.org")] += 1  # envelope
            await asyncio.to_thread(send_raw, stack, box.address, data, "corpus@example.org")

        async def stored() -> list[dict[str, object]]:
            messages: list[dict[str, object]] = []
            cursor = None
            while True:
                params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
                page = (await client.get("/api/messages", headers=box.auth, params=params)).json()
                messages += page["messages"]
                cursor = page["next_cursor"]
                if cursor is None:
                    return messages

        # Each look pages through the whole list: on the FerretDB stand-in (which scans
        # whole collections) that is slow once earlier tests have filled it, so look
        # seldom and allow for it.
        async with asyncio.timeout(240):
            while len(await stored()) < sum(expected.values()):  # noqa: ASYNC110
                await asyncio.sleep(2.0)
        got = Counter((str(m["subject"]), str(m["sender"])) for m in await stored())
        assert got == expected
    assert streams_ready(stack)
