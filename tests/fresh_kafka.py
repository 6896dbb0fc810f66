"""Fixtures for tests that need a broker of their own, formatted afresh each time.

``kafka_libs`` provisions Kafka's jars once per checkout, into ``.tmpmail-test/shared``
(Maven's cache makes later runs quick; a file lock keeps parallel runs apart).
``fresh_kafka`` starts brokers the way ``tmpmail up`` does (:mod:`deploy.kafka`,
:mod:`deploy.procs`), each in a new state directory on free ports, and stops them after
the test. It returns as soon as the broker's port accepts connections, as the launcher
used to: what happens next is what the tests are about::

    def test_x(fresh_kafka: FreshKafka) -> None:
        with fresh_kafka() as settings:
            ensure_topics(settings)
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from deploy import kafka, provision
from deploy.health import tcp_ready
from deploy.launcher import log_tail
from deploy.procs import spawn, stop_group, wait_until
from schemas.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SHARED_STATE_DIR = REPO / ".tmpmail-test" / "shared"
PORT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

FreshKafka = Callable[[], AbstractContextManager[Settings]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environ() -> dict[str, str]:
    """This process's environment without any TMPMAIL_* of the developer's."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TMPMAIL_")}


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """Kafka's runtime jars, shared by every fresh broker of every run in this checkout."""
    SHARED_STATE_DIR.mkdir(parents=True, exist_ok=True)
    with (SHARED_STATE_DIR / ".provision.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return provision.ensure_kafka_libs(SHARED_STATE_DIR, progress=print)
        except provision.ProvisionError as exc:
            pytest.fail(f"cannot provision Kafka: {exc}", pytrace=False)


@pytest.fixture
def fresh_kafka(
    kafka_libs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FreshKafka]:
    """A factory of brokers: each call formats a new cluster in a new state directory."""
    for key in list(os.environ):
        if key.startswith("TMPMAIL_"):
            monkeypatch.delenv(key)
    started: list[subprocess.Popen[bytes]] = []

    @contextmanager
    def start() -> Iterator[Settings]:
        state_dir = tmp_path / f"state-{len(started)}"
        settings = load_settings(
            state_dir=state_dir,
            kafka_bootstrap=f"127.0.0.1:{free_port()}",
            kafka_controller_port=free_port(),
        )
        kafka.write_config(settings)
        assert kafka.ensure_formatted(settings, kafka_libs), "a new state dir must be formatted"
        log = settings.log_dir / "kafka.log"
        broker = spawn(kafka.broker_command(settings, kafka_libs), log, clean_environ())
        started.append(broker)

        def port_open_or_exited() -> bool:
            return broker.poll() is not None or tcp_ready(kafka.LISTEN_HOST, settings.kafka_port)

        try:
            up = wait_until(port_open_or_exited, PORT_TIMEOUT_S)
            if not up or broker.poll() is not None:
                pytest.fail(f"the broker did not open its port:\n{log_tail(log)}", pytrace=False)
            yield settings
        finally:
            _stop(broker)

    yield start
    for broker in started:  # a test that failed inside ``with`` has stopped it already
        _stop(broker)


def _stop(broker: subprocess.Popen[bytes]) -> None:
    if broker.poll() is None:
        outcome = stop_group(broker.pid, STOP_TIMEOUT_S)
        assert outcome != "stuck", f"broker pid {broker.pid} is stuck"
    broker.wait(timeout=STOP_TIMEOUT_S)
