"""Routes against the app with httpx, a store double and no broker: the error mapping
(JSON everywhere, no paths), malformed cursors and event ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest

from api.app import create_app
from api.deps import Runtime
from api.hub import LiveHub
from api.routes import _event_id
from api.service import hash_token
from schemas.records import utcnow
from schemas.settings import Settings
from store import Mailbox, StoreError

TOKEN = "t" * 43


@dataclass
class FakeConsumer:
    assigned: bool = True
    partitions: list[int] = field(default_factory=lambda: [0, 1])


class FakeStore:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        now = utcnow()
        self.mailbox = Mailbox(
            id="m",
            address="bob@tmpmail.test",
            token_hash=hash_token(TOKEN),
            created_at=now,
            expires_at=now + timedelta(days=1),
            purge_after=now + timedelta(days=2),
        )

    async def ping(self) -> None:
        if self.fail:
            raise self.fail

    async def get_mailbox_by_token(self, token_hash: str) -> Mailbox | None:
        if self.fail:
            raise self.fail
        return self.mailbox if token_hash == self.mailbox.token_hash else None

    async def touch_mailbox(self, address: str, visited_at: object) -> None:
        return None

    async def list_messages(self, address: str, **kw: object) -> list[object]:
        raise RuntimeError("a bug: the list blew up")

    async def create_mailbox(self, mailbox: Mailbox, now: object, event: object = None) -> bool:
        if self.fail:
            raise self.fail
        return True


class NullPublisher:
    async def publish_lifecycle(self, event: object) -> None:
        return None


@pytest.fixture
def settings(tmp_path: object) -> Settings:
    return Settings(state_dir=str(tmp_path), sqlite_path="/secret/place/tmpmail.sqlite3")  # type: ignore[arg-type]


async def _client(
    settings: Settings, store: FakeStore, hub: LiveHub | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    app.state.runtime = Runtime(
        settings=settings,
        store=store,  # type: ignore[arg-type]
        hub=hub or LiveHub(8),
        publisher=NullPublisher(),
        consumer=FakeConsumer(),  # type: ignore[arg-type]
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _assert_error_shape(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert "/secret/place" not in response.text and "Traceback" not in response.text


async def test_a_store_outage_is_503_json_everywhere(settings: Settings) -> None:
    store = FakeStore(fail=StoreError("SQLite /secret/place/tmpmail.sqlite3: disk I/O error"))
    async for client in _client(settings, store):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        _assert_error_shape(await client.get("/api/messages", headers=auth), 503, "unavailable")
        _assert_error_shape(await client.get("/api/events", headers=auth), 503, "unavailable")
        _assert_error_shape(await client.post("/api/mailboxes"), 503, "unavailable")
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "/secret/place" not in ready.text
        assert ready.json()["store"] == "sqlite: down"


async def test_an_unexpected_error_is_a_json_500_without_a_trace(settings: Settings) -> None:
    async for client in _client(settings, FakeStore()):
        response = await client.get("/api/messages", headers={"Authorization": f"Bearer {TOKEN}"})
        _assert_error_shape(response, 500, "internal")
        assert "blew up" not in response.text


@pytest.mark.parametrize("cursor", ["c8Ky", "czE5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ", "!!", "cw"])
async def test_malformed_cursors_are_422(settings: Settings, cursor: str) -> None:
    async for client in _client(settings, FakeStore()):
        response = await client.get(
            "/api/messages",
            params={"cursor": cursor},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        _assert_error_shape(response, 422, "invalid")


def test_only_ascii_digits_resume_a_stream() -> None:
    assert _event_id("42") == 42
    for header in ("²", "٣", "-1", "1e3", "", None, "12a"):
        assert _event_id(header) is None


async def test_live_streams_are_capped_per_mailbox_and_per_process(tmp_path: object) -> None:
    settings = Settings(
        state_dir=str(tmp_path),  # type: ignore[arg-type]
        sse_max_per_mailbox=2,
        sse_max_connections=3,
    )
    store = FakeStore()
    hub = LiveHub(8)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(2):
        hub.subscribe(store.mailbox.address)
    async for client in _client(settings, store, hub):
        response = await client.get("/api/events", headers=auth)
        _assert_error_shape(response, 429, "rate_limited")
        assert "retry-after" in response.headers
    hub = LiveHub(8)
    for n in range(3):
        hub.subscribe(f"other{n}@tmpmail.test")
    async for client in _client(settings, store, hub):
        _assert_error_shape(await client.get("/api/events", headers=auth), 503, "unavailable")


def test_the_live_stream_defaults() -> None:
    defaults = Settings()
    assert (defaults.sse_max_per_mailbox, defaults.sse_max_connections) == (8, 10_000)
    assert defaults.sse_send_timeout_s == 15.0
