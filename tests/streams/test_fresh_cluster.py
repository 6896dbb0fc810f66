"""The streams worker on a broker formatted anew: its old local state must not survive.

The real process (``tmpmail streams``) runs against a fresh cluster while the state
directory still holds a previous cluster's ``streams/`` directory: a stale file and a
``CLUSTER_ID`` marker naming another cluster.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bus import cluster_id, ensure_topics
from deploy.health import streams_process_ready
from deploy.launcher import log_tail
from deploy.procs import spawn, stop_group, wait_until
from schemas.settings import Settings
from streams.state import MARKER, streams_state_dir
from tests.fresh_kafka import REPO, FreshKafka, clean_environ

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


@pytest.fixture
def new_cluster(fresh_kafka: FreshKafka) -> Iterator[Settings]:
    """A freshly formatted broker with our topics, and an old cluster's streams state."""
    with fresh_kafka() as settings:
        ensure_topics(settings)
        old = streams_state_dir(settings)
        (old / "v1" / "tables").mkdir(parents=True)
        (old / "v1" / "tables" / "stale.offsets").write_text("offsets of another cluster")
        (old / MARKER).write_text("OldClusterIdxxxxxxxxxx\n")
        yield settings


def _streams_environ(settings: Settings) -> dict[str, str]:
    assert settings.sqlite_path is not None
    return clean_environ() | {
        "TMPMAIL_STATE_DIR": str(settings.state_dir),
        "TMPMAIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TMPMAIL_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "TMPMAIL_STORE": "sqlite",
        "TMPMAIL_SQLITE_PATH": str(settings.sqlite_path),
        "PYTHONUNBUFFERED": "1",
    }


def test_streams_starts_clean_on_a_new_cluster(new_cluster: Settings) -> None:
    settings = new_cluster
    state = streams_state_dir(settings)
    new_id = cluster_id(settings)
    log = settings.log_dir / "streams.log"
    started = time.monotonic()
    proc = spawn(
        [sys.executable, "-m", "deploy.cli", "streams"], log, _streams_environ(settings), REPO
    )

    def claimed() -> bool:
        try:
            return (state / MARKER).read_text().strip() == new_id
        except OSError:
            return False

    try:
        wait_until(lambda: proc.poll() is not None or claimed(), READY_TIMEOUT_S)
        assert claimed(), f"streams did not claim its state dir:\n{log_tail(log, 40)}"
        assert not (state / "v1" / "tables" / "stale.offsets").exists()
        assert "wiped the local state" in log.read_text()
        ready = wait_until(
            lambda: proc.poll() is not None or streams_process_ready(settings, 0, proc.pid),
            READY_TIMEOUT_S,
        )
        assert ready and proc.poll() is None, f"streams did not get ready:\n{log_tail(log, 40)}"
        print(f"streams ready on a new cluster in {time.monotonic() - started:.1f}s")
        assert (state / MARKER).read_text().strip() == new_id  # Faust left it alone
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        assert stop_group(proc.pid, STOP_TIMEOUT_S) != "stuck"
    proc.wait(timeout=STOP_TIMEOUT_S)
