"""Fixtures for the store tests: a real FerretDB for the session, a store per test, factories.

FerretDB is the stand-in that ``deploy.provision`` builds under ``.tmpmail-test/store``
(git-ignored). It listens on a free local port and is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from deploy.provision import ProvisionError, ensure_ferretdb_binary
from store import Mailbox, MailStore, NewMessage
from tests.store.store_support import NOW, MailboxFactory, MessageFactory

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".tmpmail-test" / "store"
START_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ferretdb-standin exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)  # no readiness signal to await: poll the port
    raise RuntimeError(f"ferretdb-standin did not listen on {port} in {START_TIMEOUT_S}s")


@pytest.fixture(scope="session")
def ferretdb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A FerretDB v1 server (SQLite backend) for the whole session."""
    try:
        binary = ensure_ferretdb_binary(STATE_DIR, progress=lambda _line: None)
    except ProvisionError as exc:
        pytest.skip(f"FerretDB stand-in unavailable: {exc}")
    port = _free_port()
    data = tmp_path_factory.mktemp("ferretdb")
    log = (data / "ferretdb.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "-listen", f"127.0.0.1:{port}", "-data", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_listening(proc, port)
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(params=["sqlite", "mongodb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MailStore]:
    """An opened, empty store of each kind."""
    if request.param == "sqlite":
        from store.sqlite import SQLiteStore

        sqlite_store = SQLiteStore(tmp_path / "store.sqlite3")
        await sqlite_store.open()
        try:
            yield sqlite_store
        finally:
            await sqlite_store.close()
    else:
        from store.mongodb import MongoStore

        url = request.getfixturevalue("ferretdb_url")
        mongo_store = MongoStore(url, f"test_{uuid.uuid4().hex}")
        await mongo_store.open()
        try:
            yield mongo_store
        finally:
            await mongo_store.open()  # again, in case the test closed it
            await mongo_store.drop_database()
            await mongo_store.close()


@pytest.fixture
def make_mailbox() -> MailboxFactory:
    """``make_mailbox("a@tmpmail.test")``: an active mailbox, overridable field by field."""

    def make(address: str, **fields: object) -> Mailbox:
        values: dict[str, object] = {
            "id": uuid.uuid4().hex,
            "address": address,
            "token_hash": uuid.uuid4().hex,
            "created_at": NOW,
            "expires_at": NOW + timedelta(days=15),
            "purge_after": NOW + timedelta(days=45),
        }
        values.update(fields)
        return Mailbox(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def make_message() -> MessageFactory:
    """``make_message("a@tmpmail.test")``: a small message with a fresh id."""

    def make(address: str, **fields: object) -> NewMessage:
        ingest_id = uuid.uuid4().hex
        values: dict[str, object] = {
            "id": f"{ingest_id}:{address}",
            "address": address,
            "ingest_id": ingest_id,
            "received_at": NOW,
            "expires_at": NOW + timedelta(days=7),
            "raw": b"From: a@example.test\r\nSubject: hi\r\n\r\nhello\r\n",
            "sender": "a@example.test",
            "subject": "hi",
            "preview": "hello",
        }
        values.update(fields)
        return NewMessage(**values)  # type: ignore[arg-type]

    return make
