"""MongoDB only: an unreachable server is a StoreError, quickly."""

from __future__ import annotations

import socket
import time

import pytest

from store import StoreError
from store.mongodb import MongoStore


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port  # nothing listens once the socket is closed


async def test_an_unreachable_server_is_a_store_error() -> None:
    url = f"mongodb://127.0.0.1:{_closed_port()}/"
    store = MongoStore(url, "unreachable", server_selection_timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(StoreError, match="MongoDB"):
        await store.open()
    assert time.monotonic() - started < 5
    with pytest.raises(StoreError, match="not open"):
        await store.ping()
