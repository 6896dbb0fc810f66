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
    if kind == "huge-subject":
        folded = "\r\n ".join(["=?utf-8?q?=C3=A9=C3=A9=C3=A9?="] * 200_000)  # ~6 MiB
        return f"{head}Subject: {subject} {folded}\r\n\r\nbody\r\n".encode()
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["charset-idna", "charset-undefined", "huge-subject"])
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
