"""The mailbox contract over HTTP, against the app with httpx, a real SQLite store in
``tmp_path``, a controlled clock and no broker: lifecycle (expiry, extension, maximum
lifetime, deletion, cooldown), the browser's recent mailboxes, isolation, abuse limits,
cross-site refusal and the lifecycle outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import api.deps
import api.mailbox_routes
from api.app import create_app
from api.deps import Runtime
from api.hub import LiveHub
from api.limits import RateLimiter
from api.outbox import OutboxRelay
from api.service import (
    _ADJECTIVES,
    _NOUNS,
    RANDOM_NAME_SPACE,
    USERNAME_RE,
    random_username,
    validate_username,
)
from schemas.records import MailboxLifecycleEvent
from schemas.settings import Settings
from store import NewMessage
from store.sqlite import SQLiteStore

DAY = timedelta(days=1)
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
OURS = "http://127.0.0.1:8000"


@dataclass
class FakeConsumer:
    assigned: bool = True
    partitions: list[int] = field(default_factory=lambda: [0])


class RecordingPublisher:
    """Fails its first ``failures`` publishes (or hangs, with ``hang``), then records."""

    def __init__(self, failures: int = 0, *, hang: bool = False) -> None:
        self.failures = failures
        self.hang = hang
        self.attempts = 0
        self.published: list[MailboxLifecycleEvent] = []
        self.done = asyncio.Event()
        self.expected = 0

    async def publish_lifecycle(self, event: MailboxLifecycleEvent) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            if self.hang:
                await asyncio.Event().wait()
            raise RuntimeError("broker down")
        self.published.append(event)
        if len(self.published) >= self.expected:
            self.done.set()


class RemovalWatch:
    """The store, telling when ``removals`` outbox events have been removed."""

    def __init__(self, store: SQLiteStore, removals: int) -> None:
        self._store = store
        self._left = removals
        self.done = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def remove_lifecycle_event(self, event_id: str) -> None:
        await self._store.remove_lifecycle_event(event_id)
        self._left -= 1
        if self._left <= 0:
            self.done.set()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env:
    client: httpx.AsyncClient
    store: SQLiteStore
    runtime: Runtime
    clock: Clock
    make_client: Callable[..., httpx.AsyncClient]


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": str(tmp_path),
        "mailbox_ttl_days": 15,
        "mailbox_cooldown_days": 30,
        "message_ttl_days": 7,
        "domains": "tmpmail.test",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def env(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    clock = Clock()
    monkeypatch.setattr(api.deps, "utcnow", clock)
    monkeypatch.setattr(api.mailbox_routes, "utcnow", clock)
    store = SQLiteStore(tmp_path / "api.sqlite3")
    await store.open()
    app = create_app(settings)
    runtime = Runtime(
        settings=settings,
        store=store,
        hub=LiveHub(8),
        publisher=RecordingPublisher(),
        consumer=FakeConsumer(),  # type: ignore[arg-type]
    )
    app.state.runtime = runtime
    clients: list[httpx.AsyncClient] = []

    def make_client(**kw: object) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, **kw)  # type: ignore[arg-type]
        client = httpx.AsyncClient(transport=transport, base_url="http://test")
        clients.append(client)
        return client

    try:
        yield Env(make_client(), store, runtime, clock, make_client)
    finally:
        for client in clients:
            await client.aclose()
        await store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    code: str = response.json()["error"]["code"]
    return code


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, str]:
    response = await client.post("/api/mailboxes", json=body or None)
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


async def deliver(env: Env, address: str, count: int) -> list[str]:
    batch = []
    for _ in range(count):
        ingest = uuid.uuid4().hex
        batch.append(
            NewMessage(
                id=f"{ingest}:{address}",
                address=address,
                ingest_id=ingest,
                received_at=env.clock.now,
                expires_at=env.clock.now + 7 * DAY,
                raw=b"Subject: hi\r\n\r\nhello\r\n",
                sender="a@example.test",
                subject="hi",
                preview="hello",
            )
        )
    results = await env.store.store_messages(batch, env.clock.now)
    assert {r.status for r in results} == {"inserted"}
    return [m.id for m in batch]


async def pending_kinds(env: Env) -> list[tuple[str, str]]:
    return [(p.event.kind, p.event.address) for p in await env.store.pending_lifecycle_events(50)]


# --- lifecycle --------------------------------------------------------------------------------
async def test_the_mailbox_shows_its_state_and_extends_once_used(env: Env) -> None:
    created = await create(env.client, username="alice", domain="tmpmail.test")
    auth = bearer(created["token"])
    state = (await env.client.get("/api/mailbox", headers=auth)).json()
    assert state["address"] == "alice@tmpmail.test" and state["message_count"] == 0
    assert state["created_at"] == "2030-01-01T12:00:00Z"
    assert (state["can_extend"], state["extend_until"]) == (False, None)
    assert state["reason"] == "not_used_enough"
    refused = await env.client.post("/api/mailbox/extend", headers=auth)
    assert error_code(refused, 409) == "not_used_enough"
    assert "3 messages" in refused.json()["error"]["message"]

    await deliver(env, "alice@tmpmail.test", 3)
    state = (await env.client.get("/api/mailbox", headers=auth)).json()
    assert state["message_count"] == 3 and state["can_extend"] and state["reason"] is None
    assert state["extend_until"] == "2030-01-31T12:00:00Z"
    extended = await env.client.post("/api/mailbox/extend", headers=auth)
    assert extended.status_code == 200, extended.text
    assert extended.json()["expires_at"] == "2030-01-31T12:00:00Z"
    record = await env.store.get_mailbox("alice@tmpmail.test")
    assert record is not None and record.purge_after == T0 + 30 * DAY + 30 * DAY
    assert await pending_kinds(env) == [
        ("created", "alice@tmpmail.test"),
        ("extended", "alice@tmpmail.test"),
    ]
    events = await env.store.pending_lifecycle_events(5)
    assert events[1].event.expires_at == T0 + 30 * DAY


async def test_extension_stops_at_the_maximum_lifetime(env: Env) -> None:
    created = await create(env.client, username="max")
    auth = bearer(created["token"])
    await deliver(env, created["address"], 3)
    expiries = []
    for _ in range(3):
        response = await env.client.post("/api/mailbox/extend", headers=auth)
        assert response.status_code == 200, response.text
        expiries.append(response.json()["expires_at"])
    assert expiries[-1] == "2030-03-02T12:00:00Z"  # created + 60 days
    state = (await env.client.get("/api/mailbox", headers=auth)).json()
    assert (state["can_extend"], state["reason"]) == (False, "max_lifetime")
    refused = await env.client.post("/api/mailbox/extend", headers=auth)
    assert error_code(refused, 409) == "max_lifetime"


async def test_the_maximum_caps_a_partial_extension(tmp_path: Path) -> None:
    from api.mailbox_policy import decide_extension
    from store import Mailbox

    settings = make_settings(tmp_path, mailbox_max_lifetime_days=20)
    mailbox = Mailbox("i", "a@tmpmail.test", "h", T0, T0 + 15 * DAY, T0 + 45 * DAY)
    assert decide_extension(mailbox, 3, T0, settings).until == T0 + 20 * DAY


async def test_an_old_mailbox_visited_lately_may_be_extended(env: Env) -> None:
    created = await create(env.client, username="old")
    auth = bearer(created["token"])
    env.clock.now = T0 + DAY
    assert (await env.client.get("/api/mailbox", headers=auth)).json()["can_extend"] is False
    env.clock.now = T0 + 2 * DAY
    state = (await env.client.get("/api/mailbox", headers=auth)).json()
    assert state["can_extend"] and state["message_count"] == 0
    record = await env.store.get_mailbox(created["address"])
    assert record is not None and record.visited_at == T0 + 2 * DAY
    response = await env.client.post("/api/mailbox/extend", headers=auth)
    assert response.status_code == 200 and response.json()["expires_at"] == "2030-01-31T12:00:00Z"


async def test_visits_are_written_at_most_once_a_minute(env: Env) -> None:
    created = await create(env.client, username="visitor")
    auth = bearer(created["token"])
    await env.client.get("/api/mailbox", headers=auth)
    env.clock.now = T0 + timedelta(seconds=30)
    await env.client.get("/api/mailbox", headers=auth)
    record = await env.store.get_mailbox(created["address"])
    assert record is not None and record.visited_at == T0
    env.clock.now = T0 + timedelta(seconds=61)
    await env.client.get("/api/mailbox", headers=auth)
    record = await env.store.get_mailbox(created["address"])
    assert record is not None and record.visited_at == T0 + timedelta(seconds=61)


async def test_an_expired_token_is_recognised(env: Env) -> None:
    created = await create(env.client, username="brief")
    env.clock.now = T0 + 15 * DAY
    response = await env.client.get("/api/mailbox", headers=bearer(created["token"]))
    assert error_code(response, 401) == "mailbox_expired"
    assert response.headers["www-authenticate"] == "Bearer"
    unknown = await env.client.get("/api/mailbox", headers=bearer("x" * 43))
    assert error_code(unknown, 401) == "unauthorized"
    missing = await env.make_client().get("/api/mailbox")
    assert error_code(missing, 401) == "unauthorized"


async def test_delete_removes_the_mail_and_holds_the_address(env: Env) -> None:
    created = await create(env.client, username="gone")
    auth = bearer(created["token"])
    ids = await deliver(env, "gone@tmpmail.test", 2)
    deleted = await env.client.delete("/api/mailbox", headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""
    again = await env.client.get("/api/mailbox", headers=auth)
    assert error_code(again, 401) == "mailbox_deleted"
    assert error_code(await env.client.get("/api/messages", headers=auth), 401) == "mailbox_deleted"
    assert await env.store.get_message("gone@tmpmail.test", ids[0], now=env.clock.now) is None
    record = await env.store.get_mailbox("gone@tmpmail.test")
    assert record is not None and record.deleted and record.expires_at == T0
    assert record.purge_after == T0 + 30 * DAY
    # the address cools down: 409 until purge_after
    env.clock.now = T0 + 29 * DAY
    taken = await env.client.post("/api/mailboxes", json={"username": "gone"})
    assert error_code(taken, 409) == "conflict"
    assert await pending_kinds(env) == [
        ("created", "gone@tmpmail.test"),
        ("deleted", "gone@tmpmail.test"),
    ]


async def test_a_deleted_mail_is_tombstoned(env: Env) -> None:
    created = await create(env.client, username="tomb")
    ids = await deliver(env, "tomb@tmpmail.test", 1)
    await env.client.delete("/api/mailbox", headers=bearer(created["token"]))
    replay = NewMessage(
        id=ids[0],
        address="tomb@tmpmail.test",
        ingest_id=ids[0].partition(":")[0],
        received_at=T0,
        expires_at=T0 + 7 * DAY,
        raw=b"Subject: hi\r\n\r\nhello\r\n",
    )
    [result] = await env.store.store_messages([replay], T0)
    assert result.status == "tombstoned"


# --- the browser's recent mailboxes ---------------------------------------------------------
async def test_a_browser_keeps_five_recent_mailboxes_newest_first(env: Env) -> None:
    addresses = [(await create(env.client))["address"] for _ in range(6)]
    listed = await env.client.get("/api/mailboxes")
    assert listed.status_code == 200
    entries = listed.json()["mailboxes"]
    assert [e["address"] for e in entries] == addresses[::-1][:5]
    assert [e["current"] for e in entries] == [True, False, False, False, False]
    assert set(entries[0]) == {"address", "expires_at", "current"}
    assert "token" not in listed.text
    cookie = env.client.cookies.get("tmpmail_token")
    assert cookie is not None and cookie not in listed.text
    # the current one answers GET /api/mailbox by cookie alone
    mine = await env.client.get("/api/mailbox")
    assert mine.json()["address"] == addresses[-1]


async def test_switching_back_to_an_earlier_mailbox(env: Env) -> None:
    first = await create(env.client)
    second = await create(env.client)
    switched = await env.client.post("/api/mailboxes/current", json={"address": first["address"]})
    assert switched.status_code == 200, switched.text
    entries = switched.json()["mailboxes"]
    assert [(e["address"], e["current"]) for e in entries] == [
        (first["address"], True),
        (second["address"], False),
    ]
    assert (await env.client.get("/api/mailbox")).json()["address"] == first["address"]
    unknown = await env.client.post("/api/mailboxes/current", json={"address": "x@tmpmail.test"})
    assert error_code(unknown, 404) == "not_found"


async def test_a_cookie_restores_the_mailboxes_in_a_new_client(env: Env) -> None:
    first = await create(env.client)
    second = await create(env.client)
    restored = env.make_client()
    for name in ("tmpmail_token", "tmpmail_recent"):
        value = env.client.cookies.get(name)
        assert value
        restored.cookies.set(name, value)
    entries = (await restored.get("/api/mailboxes")).json()["mailboxes"]
    assert [e["address"] for e in entries] == [second["address"], first["address"]]
    assert (await restored.get("/api/mailbox")).json()["address"] == second["address"]


async def test_expired_and_deleted_mailboxes_leave_the_list(env: Env) -> None:
    first = await create(env.client)
    second = await create(env.client)
    third = await create(env.client)
    await env.client.delete("/api/mailbox")  # the current one: third
    entries = (await env.client.get("/api/mailboxes")).json()["mailboxes"]
    assert [(e["address"], e["current"]) for e in entries] == [
        (second["address"], True),
        (first["address"], False),
    ]
    assert third["address"] not in str(entries)
    env.clock.now = T0 + 15 * DAY
    assert (await env.client.get("/api/mailboxes")).json()["mailboxes"] == []


async def test_a_bearer_client_gets_just_its_mailbox(env: Env) -> None:
    created = await create(env.client)
    await create(env.client)
    other = env.make_client()
    entries = (await other.get("/api/mailboxes", headers=bearer(created["token"]))).json()
    assert entries["mailboxes"] == [
        {"address": created["address"], "expires_at": created["expires_at"], "current": True}
    ]
    assert (await other.get("/api/mailboxes")).json()["mailboxes"] == []


async def test_cookies_are_httponly_strict_on_api_and_secure_over_https(
    env: Env, tmp_path: Path
) -> None:
    response = await env.client.post("/api/mailboxes")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/api" in cookie
    assert "secure" not in cookie
    env.runtime.settings.trusted_proxies = ["127.0.0.1"]
    proxied = await env.client.post("/api/mailboxes", headers={"X-Forwarded-Proto": "https"})
    assert all("secure" in c.lower() for c in proxied.headers.get_list("set-cookie"))
    env.runtime.settings.trusted_proxies = ["10.0.0.1"]  # not our peer: not believed
    untrusted = await env.client.post("/api/mailboxes", headers={"X-Forwarded-Proto": "https"})
    assert not any("secure" in c.lower() for c in untrusted.headers.get_list("set-cookie"))


# --- isolation ---------------------------------------------------------------------------------
async def test_mailboxes_are_isolated(env: Env) -> None:
    alice = await create(env.client, username="alice")
    bob = await create(env.make_client(), username="bob")
    await deliver(env, "bob@tmpmail.test", 3)
    state = (await env.client.get("/api/mailbox", headers=bearer(alice["token"]))).json()
    assert (state["address"], state["message_count"]) == ("alice@tmpmail.test", 0)
    messages = (await env.client.get("/api/messages", headers=bearer(alice["token"]))).json()
    assert messages["messages"] == []
    await env.client.delete("/api/mailbox", headers=bearer(alice["token"]))
    state = (await env.client.get("/api/mailbox", headers=bearer(bob["token"]))).json()
    assert (state["address"], state["message_count"]) == ("bob@tmpmail.test", 3)


# --- abuse limits ------------------------------------------------------------------------------
async def test_a_creation_flood_is_429_per_client_address(env: Env) -> None:
    for _ in range(10):
        await create(env.client)
    flooded = await env.client.post("/api/mailboxes")
    assert error_code(flooded, 429) == "rate_limited"
    assert int(flooded.headers["retry-after"]) >= 1
    other = env.make_client(client=("192.0.2.7", 1234))
    assert (await other.post("/api/mailboxes")).status_code == 201
    # X-Forwarded-For counts only from a trusted proxy
    spoofed = await env.client.post("/api/mailboxes", headers={"X-Forwarded-For": "203.0.113.9"})
    assert spoofed.status_code == 429
    env.runtime.settings.trusted_proxies = ["127.0.0.1"]
    proxied = await env.client.post("/api/mailboxes", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 201


async def test_token_guessing_is_429(env: Env) -> None:
    created = await create(env.client)
    guesser = env.make_client()
    for n in range(30):
        guess = await guesser.get("/api/mailbox", headers=bearer(f"{n:043d}"))
        assert error_code(guess, 401) == "unauthorized"
    blocked = await guesser.get("/api/mailbox", headers=bearer(created["token"]))
    assert error_code(blocked, 429) == "rate_limited" and "retry-after" in blocked.headers
    elsewhere = env.make_client(client=("192.0.2.8", 1))
    ok = await elsewhere.get("/api/mailbox", headers=bearer(created["token"]))
    assert ok.status_code == 200


async def test_the_default_limits() -> None:
    defaults = Settings()
    assert defaults.create_rate_per_minute == 10
    assert defaults.token_failures_per_minute == 30
    assert defaults.extend_min_messages == 3
    assert defaults.extend_min_age_days == 2
    assert defaults.mailbox_max_lifetime_days == 60
    now = [0.0]
    limiter = RateLimiter(defaults.create_rate_per_minute, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(10)] == [0.0] * 10
    assert limiter.take("a") == pytest.approx(6.0)  # one token every 6 s
    assert limiter.take("b") == 0.0
    now[0] = 6.0
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0
    small = RateLimiter(1, max_clients=2, clock=lambda: now[0])
    for key in ("x", "y", "z"):
        small.take(key)
    assert len(small._buckets) == 2  # bounded


def test_random_names_are_readable_and_over_a_billion_per_domain() -> None:
    assert len(set(_ADJECTIVES)) == len(_ADJECTIVES) and len(set(_NOUNS)) == len(_NOUNS)
    assert RANDOM_NAME_SPACE == len(_ADJECTIVES) * len(_NOUNS) ** 2 * 9000
    assert RANDOM_NAME_SPACE >= 10**9, RANDOM_NAME_SPACE
    for _ in range(200):
        name = random_username()
        assert USERNAME_RE.fullmatch(name) and validate_username(name) == name
        adjective, first, second, digits = name.split("-")
        assert adjective in _ADJECTIVES and {first, second} <= set(_NOUNS)
        assert len(digits) == 4 and digits.isdigit()


# --- cross-site requests -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/mailboxes"),
        ("POST", "/api/mailbox/extend"),
        ("DELETE", "/api/mailbox"),
        ("PATCH", "/api/messages/x"),
        ("GET", "/api/events"),
    ],
)
async def test_a_cross_origin_request_is_403(env: Env, method: str, path: str) -> None:
    created = await create(env.client)
    auth = bearer(created["token"])
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await env.client.request(method, path, headers={**auth, **headers})
        assert error_code(response, 403) == "forbidden_origin"
    assert (await env.store.get_mailbox(created["address"])) is not None


async def test_our_own_and_allowed_origins_pass(env: Env) -> None:
    response = await env.client.post("/api/mailboxes", headers={"Origin": OURS})
    assert response.status_code == 201
    same = await env.client.post("/api/mailboxes", headers={"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 201
    read = await env.client.get("/api/domains", headers={"Origin": "https://evil.example"})
    assert read.status_code == 200  # reads are not refused (CORS keeps their answers)


def test_allowed_origins_come_from_settings(tmp_path: Path) -> None:
    from api.origin import origin_refusal

    settings = make_settings(tmp_path, allowed_origins="https://Mail.Example.org, http://x.test:81")
    assert settings.origins == {OURS, "https://mail.example.org", "http://x.test:81"}
    allowed = settings.origins
    assert (
        origin_refusal("POST", "/api/mailboxes", "https://mail.example.org", None, allowed) is None
    )
    assert origin_refusal("POST", "/api/mailboxes", "null", None, allowed) is not None
    assert origin_refusal("POST", "/elsewhere", "https://evil.example", None, allowed) is None
    with pytest.raises(ValueError):
        make_settings(tmp_path, allowed_origins="mail.example.org")


# --- the lifecycle outbox ---------------------------------------------------------------------
async def test_the_outbox_is_retried_until_the_publisher_succeeds(env: Env) -> None:
    for name in ("one", "two", "three"):
        await create(env.client, username=name)
    publisher = RecordingPublisher(failures=4)
    store = RemovalWatch(env.store, removals=3)
    relay = OutboxRelay(store, publisher, poll_s=0.01, first_backoff_s=0.001, max_backoff_s=0.004)
    relay.start()
    try:
        async with asyncio.timeout(10):
            await store.done.wait()
    finally:
        await relay.stop()
    assert await env.store.pending_lifecycle_events(5) == []
    assert [e.address for e in publisher.published] == [
        "one@tmpmail.test",
        "two@tmpmail.test",
        "three@tmpmail.test",
    ]
    assert publisher.attempts == 4 + 3
    assert relay.failures == 0


async def test_a_hanging_publish_is_bounded_and_retried(env: Env) -> None:
    await create(env.client, username="slow")
    publisher = RecordingPublisher(failures=1, hang=True)
    publisher.expected = 1
    relay = OutboxRelay(
        env.store, publisher, poll_s=0.01, first_backoff_s=0.001, publish_timeout_s=0.05
    )
    try:
        with pytest.raises(TimeoutError):
            await relay.publish_pending()
        assert len(await env.store.pending_lifecycle_events(5)) == 1  # it stays
        assert await relay.publish_pending() == 1
    finally:
        await relay.stop()
    assert await env.store.pending_lifecycle_events(5) == []


async def test_a_request_wakes_the_relay(env: Env) -> None:
    publisher = RecordingPublisher()
    publisher.expected = 1
    relay = OutboxRelay(env.store, publisher, poll_s=60)
    env.runtime.relay = relay
    relay.start()
    try:
        await asyncio.sleep(0)  # the first round finds nothing, then waits up to 60 s
        await create(env.client, username="woken")
        async with asyncio.timeout(5):
            await publisher.done.wait()
    finally:
        await relay.stop()
    assert publisher.published[0].kind == "created"


# --- OpenAPI -----------------------------------------------------------------------------------
async def test_every_new_route_documents_its_errors(env: Env) -> None:
    spec = (await env.client.get("/openapi.json")).json()
    # What each route can answer: the token's 401 and 429, the Origin guard's 403 on
    # state-changing methods, 400/422 with a body, 404/409 where the route says so.
    routes = {
        ("/api/mailboxes", "post"): {"400", "403", "409", "422", "429", "500", "503"},
        ("/api/mailboxes", "get"): {"401", "429", "500", "503"},
        ("/api/mailboxes/current", "post"): {"400", "403", "404", "422", "500", "503"},
        ("/api/mailbox", "get"): {"401", "429", "500", "503"},
        ("/api/mailbox", "delete"): {"401", "403", "429", "500", "503"},
        ("/api/mailbox/extend", "post"): {"401", "403", "409", "429", "500", "503"},
    }
    for (path, method), statuses in routes.items():
        responses = spec["paths"][path][method]["responses"]
        assert {s for s in responses if s >= "400"} == statuses, (path, method)
        for status in statuses:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorBody"), (path, method, status)
        if "429" in statuses:
            assert responses["429"]["headers"]["Retry-After"]["required"] is True
        if "401" in statuses:
            assert "WWW-Authenticate" in responses["401"]["headers"]
