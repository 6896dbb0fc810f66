"""The streams worker under faults, on the real stack and both stores: SIGKILLed under load
(every mail answered 250 stored exactly once), and an address created again after its
hold has passed (its new mail arrives, though the table still says expired)."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import sqlite3
import sys
import threading
import uuid
from collections import Counter
from datetime import timedelta

import httpx

from deploy.health import streams_process_ready
from deploy.procs import PidFile, spawn
from schemas.keys import normalise_address
from schemas.records import utcnow
from schemas.settings import Settings
from tests.conftest import stack_environ
from tests.e2e.helpers import Mailbox, create_mailbox, make_mail, send_mail

MAILS = 240
SENDERS = 4


async def _all_subjects(client: httpx.AsyncClient, box: Mailbox) -> list[str]:
    subjects: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/messages", headers=box.auth, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        subjects += [m["subject"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return subjects


def _restart_streams(settings: Settings) -> int:
    """Start a new worker the way the launcher does, under the same pid file."""
    env = stack_environ(TMPMAIL_STORE=settings.store, PYTHONUNBUFFERED="1")
    proc = spawn(
        [sys.executable, "-m", "deploy.cli", "streams"], settings.log_dir / "streams-0.log", env
    )
    PidFile(settings.run_dir / "streams-0.pid").write(proc.pid)
    return proc.pid


async def test_a_worker_killed_under_load_stores_every_accepted_mail_once(
    stack: Settings,
) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await create_mailbox(client)
        run = uuid.uuid4().hex[:6]
        accepted: list[str] = []
        lock = threading.Lock()

        def sender(worker: int) -> None:
            with smtplib.SMTP(
                stack.smtp_host, stack.smtp_port, local_hostname="load.test", timeout=60
            ) as smtp:
                for n in range(worker, MAILS, SENDERS):
                    subject = f"load {run} {n}"
                    smtp.sendmail(
                        "load@example.org", [box.address], make_mail(box.address, subject)
                    )
                    with lock:
                        accepted.append(subject)  # answered 250

        threads = [threading.Thread(target=sender, args=(w,)) for w in range(SENDERS)]
        for thread in threads:
            thread.start()
        async with asyncio.timeout(60):
            while len(accepted) < MAILS // 3:  # noqa: ASYNC110 - waiting on other threads
                await asyncio.sleep(0.05)
        old = PidFile(stack.run_dir / "streams-0.pid").live_pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        new = await asyncio.to_thread(_restart_streams, stack)
        for thread in threads:
            await asyncio.to_thread(thread.join, 120)
        assert len(accepted) == MAILS

        async with asyncio.timeout(120):
            while not (streams_process_ready(stack, 0, new)):  # noqa: ASYNC110 - a file, not an event
                await asyncio.sleep(0.2)
            while len(set(await _all_subjects(client, box))) < MAILS:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
        await asyncio.sleep(1)  # a duplicate stored late would show by now
        counts = Counter(await _all_subjects(client, box))
        assert set(counts) == set(accepted)
        assert [s for s, c in counts.items() if c > 1] == []


async def test_an_address_created_again_after_its_hold_gets_its_new_mail(
    stack: Settings,
) -> None:
    username = f"again-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        first = await create_mailbox(client, username=username)
        await asyncio.to_thread(send_mail, stack, first.address, "to the first owner")
        async with asyncio.timeout(30):
            while not await _all_subjects(client, first):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        # The first record's life and cooldown pass (moved into the past in the store).
        await asyncio.to_thread(_expire_mailbox, stack, normalise_address(first.address))
        domain = first.address.rpartition("@")[2]
        second = await create_mailbox(client, username=username, domain=domain)
        assert second.address == first.address and second.token != first.token
        await asyncio.to_thread(send_mail, stack, second.address, "to the second owner")
        async with asyncio.timeout(30):
            while "to the second owner" not in await _all_subjects(client, second):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert await _all_subjects(client, second) == ["to the second owner"]


def _expire_mailbox(settings: Settings, address: str) -> None:
    past = utcnow() - timedelta(days=60)
    millis = int(past.timestamp() * 1000)
    if settings.store == "sqlite":
        assert settings.sqlite_path is not None
        conn = sqlite3.connect(settings.sqlite_path, timeout=10)
        with conn:
            conn.execute(
                "UPDATE mailboxes SET created_at = ?, expires_at = ?, purge_after = ?"
                " WHERE address = ?",
                (millis - 1000, millis, millis, address),
            )
        conn.close()
        return
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(
        settings.mongo_url.get_secret_value(), tz_aware=True
    )
    try:
        client[settings.mongo_database]["mailboxes"].update_one(
            {"_id": address},
            {"$set": {"created_at": past, "expires_at": past, "purge_after": past}},
        )
    finally:
        client.close()
