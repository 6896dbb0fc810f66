"""Whole-stack fixtures, shared by every test folder: real processes via ``tmpmail up``.

``stack_sqlite`` and ``stack_mongodb`` yield the :class:`~schemas.settings.Settings` of a
stack started with ``tmpmail up --detach --store <store>`` in the TEST environment
(:data:`TEST_ENV`: its own ports and state directory, so it runs beside ``make run``);
``stack`` is the same, parametrised over both stores::

    def test_mail_arrives(stack: Settings) -> None: ...

At most one stack is up at a time: asking for the other store brings the running one
down first, and e2e tests are ordered by store so that this happens once. A stack stays
up across the tests that share its store and comes down at the end of the session.
When a test that used it fails, the tail of every log is attached to its report.
Tests that use these fixtures are marked ``e2e`` automatically.

``fresh_kafka`` (:mod:`tests.fresh_kafka`) starts brokers of a test's own instead, each
formatted afresh, for tests of what happens on a first start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from deploy.launcher import Launcher, log_tail
from schemas.settings import Settings, load_settings
from tests.fresh_kafka import fresh_kafka, kafka_libs  # noqa: F401 (fixtures for every folder)

REPO = Path(__file__).resolve().parent.parent
#: ``TMPMAIL_TEST_SLOT=N`` (N > 0) moves the test stack to ports N*10 higher and a state
#: dir of its own, so that two checkouts (or two people) can run e2e tests side by side.
TEST_SLOT = int(os.environ.get("TMPMAIL_TEST_SLOT", "0") or 0)
_OFF = TEST_SLOT * 10
TEST_STATE_DIR = REPO / ".tmpmail-test" / ("stack" if TEST_SLOT == 0 else f"stack-{TEST_SLOT}")
TLS_DIR = REPO / ".tmpmail-test" / "tls"
TEST_ENV = {
    "TMPMAIL_STATE_DIR": str(TEST_STATE_DIR),
    "TMPMAIL_SMTP_PORT": str(12525 + _OFF),
    "TMPMAIL_HTTP_PORT": str(18000 + _OFF),
    "TMPMAIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{19092 + _OFF}",
    "TMPMAIL_KAFKA_CONTROLLER_PORT": str(19093 + _OFF),
    "TMPMAIL_MONGO_URL": f"mongodb://127.0.0.1:{27018 + _OFF}/",
    # Every test client is 127.0.0.1: the per-client limit is raised here, and its
    # default has a test of its own (tests/ingest).
    "TMPMAIL_SMTP_MAX_CONNECTIONS_PER_CLIENT": "1000",
    # Likewise the API's per-client limits (their defaults: tests/api/test_mailbox_routes.py).
    "TMPMAIL_CREATE_RATE_PER_MINUTE": "100000",
    "TMPMAIL_TOKEN_FAILURES_PER_MINUTE": "100000",
    # Short enough for the abuse and broker-stopped tests to see them fire.
    "TMPMAIL_SMTP_DATA_TIMEOUT_S": "8",
    "TMPMAIL_PRODUCE_TIMEOUT_S": "5",
    # A killed worker's partitions move to its replacement quickly.
    "TMPMAIL_STREAMS_SESSION_TIMEOUT_S": "6",
    # STARTTLS with a self-signed certificate made by tls_files() (swaks --tls).
    "TMPMAIL_SMTP_TLS_CERT": str(TLS_DIR / "cert.pem"),
    "TMPMAIL_SMTP_TLS_KEY": str(TLS_DIR / "key.pem"),
}


def tls_files() -> tuple[Path, Path]:
    """The test stack's self-signed certificate and key, made once with openssl."""
    cert, key = TLS_DIR / "cert.pem", TLS_DIR / "key.pem"
    if not (cert.exists() and key.exists()):
        TLS_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                "-subj", "/CN=mx.tmpmail.test", "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return cert, key


#: First start provisions (Maven, and a Go build for mongodb): minutes, not seconds.
UP_TIMEOUT_S = 900.0
DOWN_TIMEOUT_S = 240.0
STACK_FIXTURES = {"stack_sqlite": "sqlite", "stack_mongodb": "mongodb"}


def stack_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any TMPMAIL_* of the developer's, plus TEST_ENV."""
    tls_files()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TMPMAIL_")}
    env.update(TEST_ENV)
    env.update(extra)
    return env


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def stack_settings(store: str, env: dict[str, str] | None = None) -> Settings:
    """The settings the stack's processes load, for ``store``."""
    with _environ(env if env is not None else stack_environ()):
        return load_settings(store=store)


def run_tmpmail(
    *args: str, timeout_s: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``tmpmail <args>`` in a subprocess with the TEST environment (or ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        env=env if env is not None else stack_environ(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def private_stack_environ(
    state_dir: Path, smtp: int, http: int, kafka: int, controller: int, mongo: int, **extra: str
) -> dict[str, str]:
    """The TEST environment for a stack of a test's own (its state dir and ports), beside
    the shared one; without STARTTLS (the shared stack's certificate need not exist)."""
    env = stack_environ(
        TMPMAIL_STATE_DIR=str(state_dir),
        TMPMAIL_SMTP_PORT=str(smtp),
        TMPMAIL_HTTP_PORT=str(http),
        TMPMAIL_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka}",
        TMPMAIL_KAFKA_CONTROLLER_PORT=str(controller),
        TMPMAIL_MONGO_URL=f"mongodb://127.0.0.1:{mongo}/",
        **extra,
    )
    return {key: value for key, value in env.items() if not key.startswith("TMPMAIL_SMTP_TLS_")}


def check_command(result: subprocess.CompletedProcess[str], what: str, settings: Settings) -> str:
    """``result``'s output; a failure shows it with the tails of the stack's logs."""
    assert result.returncode == 0, (
        f"{what} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}\n"
        f"{log_tails(settings)}"
    )
    return result.stdout


def log_tails(settings: Settings, lines: int = 40) -> str:
    logs = sorted(settings.log_dir.glob("*.log"))
    if not logs:
        return f"(no logs under {settings.log_dir})"
    return "\n".join(f"--- {log}\n{log_tail(log, lines)}" for log in logs)


class StackSwitch:
    """Keeps at most one test stack up, and brings up the one a test asks for."""

    def __init__(self) -> None:
        self.current: str | None = None

    # The helpers, for tests that drive ``tmpmail`` themselves (tests/deploy).
    environ = staticmethod(stack_environ)
    settings = staticmethod(stack_settings)
    run = staticmethod(run_tmpmail)

    def up(self, store: str) -> Settings:
        settings = stack_settings(store)
        if self.current == store and self._healthy(settings):
            return settings
        self.down()
        result = run_tmpmail("up", "--detach", "--store", store, timeout_s=UP_TIMEOUT_S)
        if result.returncode != 0:
            tails = log_tails(settings)
            self.down()
            pytest.fail(
                f"`tmpmail up --detach --store {store}` failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{tails}",
                pytrace=False,
            )
        self.current = store
        return settings

    def down(self) -> None:
        """Stop whatever runs from the test state dir (leftovers of a killed run too)."""
        self.current = None
        result = run_tmpmail("down", timeout_s=DOWN_TIMEOUT_S)
        if result.returncode != 0:
            pytest.fail(
                f"`tmpmail down` failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}",
                pytrace=False,
            )

    @staticmethod
    def _healthy(settings: Settings) -> bool:
        return Launcher(settings, out=lambda line: None).status() == 0


@pytest.fixture(scope="session")
def stack_switch() -> Iterator[StackSwitch]:
    switch = StackSwitch()
    yield switch
    switch.down()


@pytest.fixture
def stack_sqlite(stack_switch: StackSwitch) -> Settings:
    return stack_switch.up("sqlite")


@pytest.fixture
def stack_mongodb(stack_switch: StackSwitch) -> Settings:
    return stack_switch.up("mongodb")


@pytest.fixture(params=["sqlite", "mongodb"])
def stack(request: pytest.FixtureRequest) -> Settings:
    settings: Settings = request.getfixturevalue(f"stack_{request.param}")
    return settings


def _stack_store(item: pytest.Item) -> str | None:
    names = getattr(item, "fixturenames", ())
    for fixture, store in STACK_FIXTURES.items():
        if fixture in names:
            return store
    if "stack" in names:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("stack") if callspec is not None else None
        return str(param) if param is not None else None
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark stack tests ``e2e``; run them last, sqlite ones before mongodb ones."""
    order = {None: 0, "sqlite": 1, "mongodb": 2}
    for item in items:
        if _stack_store(item) is not None:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: order.get(_stack_store(item), 1))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    store = _stack_store(item)
    if store is not None and report.failed and call.when == "call":
        report.sections.append(("tmpmail logs (tail)", log_tails(stack_settings(store))))
    return report
