"""``tmpmail up --streams 2`` on the real stack: two workers of one consumer group.

The stack runs from a state dir and on ports of its own (not the shared test stack's), so
it runs beside that one. One mailbox is made on each raw-mail partition (its address's
murmur2, as ingest keys it), so both workers must store mail, each looking its
recipients up in its own table: a worker without the mailbox's lifecycle partition, or
two holding one partition, would show here as mail missing or stored twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from deploy import health
from deploy.procs import PidFile, proc_info
from schemas.keys import key_bytes, partition_for
from schemas.settings import Settings
from streams.state import streams_state_dir
from tests.conftest import REPO, check_command, private_stack_environ, run_tmpmail, stack_settings
from tests.e2e.helpers import Mailbox, create_mailbox, send_mail, wait_for_messages

pytestmark = pytest.mark.e2e

STATE_DIR = REPO / ".tmpmail-test" / "streams-processes"
WORKERS = 2
UP_TIMEOUT_S = 900.0
COMMAND_TIMEOUT_S = 240.0


def environ() -> dict[str, str]:
    return private_stack_environ(STATE_DIR, 13545, 18540, 19542, 19543, 27548)


@pytest.fixture
def settings() -> Iterator[Settings]:
    """No stack before the test (a killed run's leftovers are stopped), none after it."""
    env = environ()
    settings = stack_settings("sqlite", env)
    check_command(
        run_tmpmail("down", timeout_s=COMMAND_TIMEOUT_S, env=env), "down (before)", settings
    )
    yield settings
    check_command(
        run_tmpmail("down", timeout_s=COMMAND_TIMEOUT_S, env=env), "down (after)", settings
    )


def username_on(partition: int, settings: Settings, run: str) -> str:
    """A username whose address on the first domain is keyed to raw-mail ``partition``."""
    for n in range(10_000):
        name = f"w{run}-{n}"
        key = key_bytes(f"{name}@{settings.domains[0]}")
        if partition_for(key, settings.topic_partitions) == partition:
            return name
    raise AssertionError(f"no username on partition {partition}")


async def one_mailbox_per_partition(settings: Settings) -> dict[int, Mailbox]:
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=settings.http_url, timeout=30) as client:
        boxes = {}
        for partition in range(settings.topic_partitions):
            body = {"username": username_on(partition, settings, run)}
            boxes[partition] = await create_mailbox(client, **body, domain=settings.domains[0])
        return boxes


async def deliver_one_each(settings: Settings, boxes: dict[int, Mailbox]) -> None:
    for partition, box in boxes.items():
        refused = await asyncio.to_thread(send_mail, settings, box.address, f"p{partition}")
        assert refused == {}, refused
    async with httpx.AsyncClient(base_url=settings.http_url, timeout=30) as client:
        for partition, box in boxes.items():
            messages = await wait_for_messages(client, box, 1, timeout_s=60)
            assert [m["subject"] for m in messages] == [f"p{partition}"], partition


def test_two_streams_workers_split_the_partitions_and_both_store(settings: Settings) -> None:
    env = environ()
    up = ("up", "--detach", "--store", "sqlite", "--streams", str(WORKERS))
    output = check_command(
        run_tmpmail(*up, timeout_s=UP_TIMEOUT_S, env=env), "up --streams 2", settings
    )
    assert "streams-0 ready" in output and "streams-1 ready" in output, output
    assert "streams workers settled on 6 partitions" in output, output

    pids = [PidFile(settings.run_dir / f"streams-{i}.pid").live_pid() for i in range(WORKERS)]
    assert None not in pids and len(set(pids)) == WORKERS, pids
    owned = [
        health.ready_file_partitions(settings.streams_ready_file(i)) or [] for i in range(WORKERS)
    ]
    assert all(owned), f"a worker without partitions: {owned}"
    assert sorted(owned[0] + owned[1]) == list(range(settings.topic_partitions)), owned
    for index in range(WORKERS):
        tables = streams_state_dir(settings, index) / "v1" / "tables"
        assert tables.is_dir(), f"streams-{index} has no table directory of its own"
    check_command(
        run_tmpmail("health", "streams", timeout_s=COMMAND_TIMEOUT_S, env=env), "health", settings
    )

    boxes = asyncio.run(one_mailbox_per_partition(settings))
    asyncio.run(deliver_one_each(settings, boxes))
    print(f"\npartitions per worker: {owned}; one mail stored on each partition")

    status = check_command(
        run_tmpmail("status", timeout_s=COMMAND_TIMEOUT_S, env=env), "status", settings
    )
    lines = {line.split()[0]: line for line in status.splitlines()}
    for index, pid in enumerate(pids):
        line = lines[f"streams-{index}"]
        assert f"pid={pid} " in line and "alive=yes" in line and "ready=yes" in line, status

    check_command(run_tmpmail("down", timeout_s=COMMAND_TIMEOUT_S, env=env), "down", settings)
    for pid in pids:
        info = proc_info(pid or 0)
        assert info is None or info.zombie, f"streams pid {pid} still runs after down"
    assert not list(settings.run_dir.glob("streams-*")), "streams pid or ready files left"
