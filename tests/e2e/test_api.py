"""The API on the real stack: SSE resume pages through everything missed."""

from __future__ import annotations

import asyncio
import smtplib

import httpx

from schemas.settings import Settings
from tests.e2e.helpers import create_mailbox, make_mail, open_events

MISSED = 520  # more than the 500 the first version replayed


async def test_sse_resume_sends_everything_stored_after_last_event_id(stack: Settings) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await create_mailbox(client)

        def send_all() -> None:
            with smtplib.SMTP(
                stack.smtp_host, stack.smtp_port, local_hostname="c.test", timeout=60
            ) as smtp:
                for n in range(MISSED):
                    smtp.sendmail("a@example.org", [box.address], make_mail(box.address, f"m{n}"))

        await asyncio.to_thread(send_all)

        async def newest_seq() -> int:
            response = await client.get("/api/messages", headers=box.auth, params={"limit": 1})
            messages = response.json()["messages"]
            return int(messages[0]["seq"]) if messages else 0

        async with asyncio.timeout(60):
            while await newest_seq() < MISSED:  # noqa: ASYNC110 - polling the API
                await asyncio.sleep(0.3)
        seqs: list[int] = []
        async with open_events(client, token=box.token, last_event_id="0") as events:
            while len(seqs) < MISSED:
                event = await events.next_message(timeout_s=30)
                seqs.append(int(event.id or 0))
        assert seqs == sorted(seqs) and len(set(seqs)) == MISSED
        assert seqs[-1] == MISSED
