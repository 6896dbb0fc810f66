"""``tmpmail replay`` on the real stack and both stores: twice changes nothing, a parser
version bump updates the stored documents in place, deleted mail stays deleted."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import uuid

import httpx
import pytest

import mail._parse
from schemas.settings import Settings
from streams.replay import ReplaySpec, replay
from tests.conftest import REPO, stack_environ
from tests.e2e.helpers import Mailbox, create_mailbox, send_mail


async def _messages(client: httpx.AsyncClient, box: Mailbox) -> list[dict[str, object]]:
    response = await client.get("/api/messages", headers=box.auth, params={"limit": "100"})
    assert response.status_code == 200, response.text
    messages: list[dict[str, object]] = response.json()["messages"]
    return messages


async def _filled_mailbox(stack: Settings, client: httpx.AsyncClient, count: int) -> Mailbox:
    box = await create_mailbox(client)
    for n in range(count):
        await asyncio.to_thread(send_mail, stack, box.address, f"replayed {n}")
    async with asyncio.timeout(30):
        while len(await _messages(client, box)) < count:  # noqa: ASYNC110 - polling the API
            await asyncio.sleep(0.2)
    return box


async def test_replay_twice_changes_nothing(stack: Settings) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await _filled_mailbox(stack, client, 3)
        before = await _messages(client, box)
        spec = ReplaySpec(from_beginning=True, mailbox=box.address)
        for _ in range(2):
            out = io.StringIO()
            counts = await replay(stack, spec, out=out)
            assert counts.statuses["inserted"] == 0 and counts.statuses["updated"] == 0
            assert counts.statuses["existing"] >= 3 and counts.errors == 0
            assert "unchanged" in out.getvalue()
        assert await _messages(client, box) == before


async def test_a_parser_version_bump_updates_the_documents_in_place(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await _filled_mailbox(stack, client, 2)
        before = {m["id"]: m for m in await _messages(client, box)}
        monkeypatch.setattr(mail._parse, "PARSER_VERSION", mail._parse.PARSER_VERSION + 1)
        counts = await replay(
            stack, ReplaySpec(from_beginning=True, mailbox=box.address), out=io.StringIO()
        )
        assert counts.statuses["updated"] == 2, counts.summary()
        after = {m["id"]: m for m in await _messages(client, box)}
        assert set(after) == set(before)
        for mid, message in after.items():  # same seq, same seen; parse redone
            assert (message["seq"], message["seen"]) == (before[mid]["seq"], before[mid]["seen"])
        again = await replay(
            stack, ReplaySpec(from_beginning=True, mailbox=box.address), out=io.StringIO()
        )
        assert again.statuses["updated"] == 0


async def test_replay_after_a_delete_keeps_it_deleted(stack: Settings) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        box = await _filled_mailbox(stack, client, 2)
        listed = await _messages(client, box)
        from store import create_store

        store = create_store(stack)
        await store.open()
        try:
            from schemas.keys import normalise_address

            assert await store.delete_message(normalise_address(box.address), str(listed[0]["id"]))
            counts = await replay(
                stack, ReplaySpec(from_beginning=True, mailbox=box.address), store=store,
                out=io.StringIO(),
            )  # fmt: skip
        finally:
            await store.close()
        assert counts.statuses["tombstoned"] == 1
        assert [m["id"] for m in await _messages(client, box)] == [listed[1]["id"]]


def test_the_replay_command_shows_progress_and_a_summary(stack: Settings) -> None:
    address = f"nobody-{uuid.uuid4().hex[:6]}@tmpmail.test"
    env = stack_environ(TMPMAIL_STORE=stack.store)
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "replay", "--since", "1h", "--mailbox", address],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "replay:" in result.stderr and "read " in result.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "replay", "--partition", "1"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "--offset" in bad.stderr
