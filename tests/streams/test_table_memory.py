"""The mailbox table stays out of the worker's memory: 100k mailboxes cost it < 50 MiB.

On a broker of its own, the real streams worker (``tmpmail streams``) starts with an
empty table and its resident memory is read once it is ready. Then 100,000 ``created``
records go straight onto the lifecycle topic; once the worker has put every one in its
table and committed, it is stopped and started again, and its memory is read again once
it is ready. With the in-memory store every mailbox came back into RAM at each start
(about 70 MiB more for 100k); the RocksDB store reads them from disk when asked.

Last, mail to two of those mailboxes shows the restarted worker's table still knows them:
the look-up finds them in the table, so it is the store (which has none of them) that
refuses the write, not the look-up.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from bus import AsyncProducer, ensure_topics, producer_config
from deploy.health import streams_process_ready
from deploy.launcher import log_tail
from deploy.procs import spawn, stop_group, wait_until
from schemas.records import (
    DroppedMail,
    MailboxLifecycleEvent,
    RawMailEnvelope,
    new_ingest_id,
    utcnow,
)
from schemas.settings import Settings
from schemas.topics import (
    DROPPED_MAIL_TOPIC,
    MAILBOX_LIFECYCLE_TOPIC,
    MAILBOX_TABLE_CHANGELOG,
    STREAMS_APP_ID,
    mailbox_lifecycle_topic,
    raw_mail_topic,
)
from streams.table import partition_db_path
from tests.e2e.helpers import TopicTail, make_mail
from tests.fresh_kafka import REPO, FreshKafka, clean_environ

pytestmark = pytest.mark.e2e  # real processes: a broker and the streams worker

MAILBOXES = 100_000
BOUND_MIB = 50
READY_TIMEOUT_S = 90.0
APPLIED_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
#: Memory is read this long after the worker says it is ready, so that what a start
#: allocates has been allocated.
SETTLE_S = 1.0
PUBLISH_CHUNK = 20_000
#: A bulk load, not a mailbox created by a user who waits for it: let records batch up.
PUBLISH_LINGER_MS = 20


def _environ(settings: Settings) -> dict[str, str]:
    assert settings.sqlite_path is not None
    return clean_environ() | {
        "TMPMAIL_STATE_DIR": str(settings.state_dir),
        "TMPMAIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TMPMAIL_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "TMPMAIL_STORE": "sqlite",
        "TMPMAIL_SQLITE_PATH": str(settings.sqlite_path),
        "PYTHONUNBUFFERED": "1",
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _start_ready(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start the worker, wait until it is ready, and return it with its RSS in MiB."""
    started = time.monotonic()
    proc = spawn([sys.executable, "-m", "deploy.cli", "streams"], log, _environ(settings), REPO)
    ready = wait_until(
        lambda: proc.poll() is not None or streams_process_ready(settings, 0, proc.pid),
        READY_TIMEOUT_S,
    )
    if not ready or proc.poll() is not None:
        _stop(proc)
        pytest.fail(f"streams did not get ready:\n{log_tail(log, 40)}", pytrace=False)
    time.sleep(SETTLE_S)
    rss = _rss_mib(proc.pid)
    print(f"streams ready in {time.monotonic() - started:.1f}s, VmRSS {rss:.1f} MiB")
    return proc, rss


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        assert stop_group(proc.pid, STOP_TIMEOUT_S) != "stuck"
    proc.wait(timeout=STOP_TIMEOUT_S)


async def _publish_created(settings: Settings, count: int) -> None:
    producer = AsyncProducer(producer_config(settings, **{"linger.ms": PUBLISH_LINGER_MS}))
    await producer.start()
    now = utcnow()
    try:
        for start in range(0, count, PUBLISH_CHUNK):
            await asyncio.gather(
                *(
                    producer.publish(
                        mailbox_lifecycle_topic,
                        MailboxLifecycleEvent(
                            kind="created",
                            address=_address(n),
                            mailbox_id=f"{n:032x}",
                            created_at=now,
                            expires_at=now + timedelta(days=15),
                            at=now,
                        ),
                    )
                    for n in range(start, min(start + PUBLISH_CHUNK, count))
                )
            )
    finally:
        await producer.stop()


def _address(n: int) -> str:
    return f"box{n:06d}@tmpmail.test"


async def _send_mail(settings: Settings, addresses: list[str]) -> None:
    producer = AsyncProducer(producer_config(settings))
    await producer.start()
    try:
        for address in addresses:
            envelope = RawMailEnvelope(
                ingest_id=new_ingest_id(),
                sender="sender@example.org",
                recipient=address,
                client_address="127.0.0.1",
                received_at=utcnow(),
            )
            await producer.publish(raw_mail_topic, envelope, body=make_mail(address, "hi"))
    finally:
        await producer.stop()


def _drop_details(settings: Settings, addresses: list[str]) -> dict[str, str]:
    """Send mail to ``addresses`` (none is in the store) and return why each was dropped."""
    tail = TopicTail(settings, DROPPED_MAIL_TOPIC)
    try:
        asyncio.run(_send_mail(settings, addresses))
        details: dict[str, str] = {}
        while len(details) < len(addresses):
            _key, value = tail.wait_for(lambda _k, _v: True, 30.0)
            dropped = DroppedMail.from_bytes(value)
            assert dropped.reason == "unknown_mailbox", dropped
            details[dropped.recipient] = dropped.detail
        return details
    finally:
        tail.close()


def _all_applied(settings: Settings, count: int) -> bool:
    """Every lifecycle record is in the table's changelog, and the worker committed them."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": STREAMS_APP_ID})
    try:
        parts = range(settings.topic_partitions)
        changelog = sum(
            consumer.get_watermark_offsets(TopicPartition(MAILBOX_TABLE_CHANGELOG, p), 5)[1]
            for p in parts
        )
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(MAILBOX_LIFECYCLE_TOPIC, p), 5)[1]
            for p in parts
        }
        committed = consumer.committed(
            [TopicPartition(MAILBOX_LIFECYCLE_TOPIC, p) for p in parts], timeout=5
        )
        done = all(tp.offset == ends[tp.partition] for tp in committed)
        return changelog >= count and sum(ends.values()) == count and done
    finally:
        consumer.close()


def test_100k_mailboxes_cost_a_restarted_worker_under_50_mib(fresh_kafka: FreshKafka) -> None:
    with fresh_kafka() as settings:
        ensure_topics(settings)
        log = settings.log_dir / "streams.log"

        proc, empty_rss = _start_ready(settings, log)
        try:
            began = time.monotonic()
            asyncio.run(_publish_created(settings, MAILBOXES))
            published = time.monotonic()
            applied = wait_until(lambda: _all_applied(settings, MAILBOXES), APPLIED_TIMEOUT_S, 0.5)
            assert applied, f"the table did not take every mailbox:\n{log_tail(log, 40)}"
            print(
                f"{MAILBOXES} created records published in {published - began:.1f}s, "
                f"in the table {time.monotonic() - published:.1f}s later; "
                f"VmRSS {_rss_mib(proc.pid):.1f} MiB"
            )
        finally:
            _stop(proc)
        assert partition_db_path(settings, 0).is_dir(), "the table is on disk"

        proc, full_rss = _start_ready(settings, log)
        try:
            print(
                f"VmRSS: empty table {empty_rss:.1f} MiB, {MAILBOXES} mailboxes {full_rss:.1f} MiB"
            )
            assert full_rss - empty_rss < BOUND_MIB, (empty_rss, full_rss)
            known = [_address(0), _address(MAILBOXES - 1)]
            details = _drop_details(settings, [*known, "nobody@tmpmail.test"])
        finally:
            _stop(proc)
        # "mailbox not in the store": the look-up found the mailbox (in the table), and the
        # store refused the write; "no such mailbox": the look-up found it nowhere.
        assert details == {
            **dict.fromkeys(known, "mailbox not in the store"),
            "nobody@tmpmail.test": "no such mailbox",
        }
