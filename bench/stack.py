"""A whole tmpmail stack for a benchmark: its own ports and state dir, up and down.

:class:`BenchStack` runs the project's launcher (``python -m deploy.cli up --detach``,
then ``down``) with ``TMPMAIL_*`` variables of its own, as :mod:`bench.ingest` does for
its stack, and adds what the end-to-end benches (:mod:`bench.live`, :mod:`bench.replay`)
need beside it: the tail of every service log when something fails, and the few API
calls they make (create a mailbox, the newest ``seq`` of one, count its messages).

The launcher (``bench.ingest.tmpmail``) and the progress lines are :mod:`bench.ingest`'s.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench.ingest import BenchError, git_state, port_is_free, progress, tmpmail

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / ".tmpmail-bench"
RESULTS_DIR = BENCH_DIR / "results"

HOST = "127.0.0.1"
UP_TIMEOUT_S = 900.0
DOWN_TIMEOUT_S = 240.0
LOG_TAIL_LINES = 25

__all__ = [
    "BENCH_DIR",
    "HOST",
    "REPO",
    "RESULTS_DIR",
    "BenchError",
    "BenchStack",
    "Mailbox",
    "Ports",
    "count_messages",
    "create_mailbox",
    "git_state",
    "machine",
    "newest_seq",
    "percentile",
    "progress",
    "sigterm_as_interrupt",
    "stamp",
]


@dataclass(frozen=True)
class Ports:
    smtp: int
    http: int
    kafka: int
    controller: int


class BenchStack:
    """The stack in ``state_dir`` on ``ports``; ``extra_env`` adds TMPMAIL_* settings."""

    def __init__(self, state_dir: Path, ports: Ports, extra_env: dict[str, str] | None = None):
        self.state_dir = state_dir
        self.ports = ports
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TMPMAIL_")}
        self.env.update(
            {
                "TMPMAIL_STATE_DIR": str(state_dir),
                "TMPMAIL_SMTP_HOST": HOST,
                "TMPMAIL_SMTP_PORT": str(ports.smtp),
                "TMPMAIL_HTTP_HOST": HOST,
                "TMPMAIL_HTTP_PORT": str(ports.http),
                "TMPMAIL_KAFKA_BOOTSTRAP": f"{HOST}:{ports.kafka}",
                "TMPMAIL_KAFKA_CONTROLLER_PORT": str(ports.controller),
                # Every bench connection comes from 127.0.0.1.
                "TMPMAIL_SMTP_MAX_CONNECTIONS_PER_CLIENT": "10000",
                "TMPMAIL_CREATE_RATE_PER_MINUTE": "100000",
                "TMPMAIL_TOKEN_FAILURES_PER_MINUTE": "100000",
                "PYTHONUNBUFFERED": "1",
                **(extra_env or {}),
            }
        )
        self.started = False

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.ports.http}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def sqlite_path(self) -> Path:
        """The SQLite store's file (the default under the state dir unless set)."""
        given = self.env.get("TMPMAIL_SQLITE_PATH")
        return Path(given) if given else self.state_dir / "data" / "tmpmail.sqlite3"

    def wipe_data(self) -> None:
        """Forget the previous run's broker log, streams state and store (keep the jars)."""
        parts = [self.state_dir / "kafka/data", self.state_dir / "data"]
        parts += self.state_dir.glob("streams*")  # every worker's: streams, streams-1, ...
        for path in parts:
            if path.exists():
                shutil.rmtree(path)

    def up(self) -> None:
        if any((self.state_dir / "run").glob("*.pid")):
            progress(f"stopping what an earlier bench left running in {self.state_dir}")
            tmpmail("down", env=self.env, timeout_s=DOWN_TIMEOUT_S)
        for name, port in (
            ("SMTP", self.ports.smtp),
            ("HTTP", self.ports.http),
            ("Kafka", self.ports.kafka),
            ("Kafka controller", self.ports.controller),
        ):
            if not port_is_free(port):
                raise BenchError(f"the {name} port {port} is taken: choose another (--help)")
        progress(f"starting the stack: python -m deploy.cli up --detach (state {self.state_dir})")
        self.started = True
        code, _ = tmpmail("up", "--detach", env=self.env, timeout_s=UP_TIMEOUT_S)
        if code != 0:
            raise BenchError(
                f"`tmpmail up` failed (exit {code}); its output is above.\n{self.log_tails()}"
            )

    def down(self) -> None:
        if not self.started:
            return
        progress("stopping the stack: python -m deploy.cli down")
        code, _ = tmpmail("down", env=self.env, timeout_s=DOWN_TIMEOUT_S)
        if code != 0:
            progress(f"  `tmpmail down` exited {code}")
        self.started = False

    def log_tails(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of every log in ``<state>/logs``."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                tail = [f"(unreadable: {exc})"]
            parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts) if parts else f"(no logs in {self.log_dir})"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http_url, timeout=httpx.Timeout(30.0))


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """``kill`` stops the bench as Ctrl-C does: the stack goes down too."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the API calls of the benches -----------------------------------------------------------


@dataclass(frozen=True)
class Mailbox:
    address: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_mailbox(client: httpx.AsyncClient) -> Mailbox:
    response = await client.post("/api/mailboxes", json={})
    if response.status_code != 201:
        raise BenchError(f"POST /api/mailboxes: {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return Mailbox(address=str(body["address"]), token=str(body["token"]))


async def newest_seq(client: httpx.AsyncClient, mailbox: Mailbox) -> int:
    """The ``seq`` of the mailbox's newest message (0 when it has none)."""
    response = await client.get("/api/messages", params={"limit": 1}, headers=mailbox.auth)
    response.raise_for_status()
    messages = response.json()["messages"]
    return int(messages[0]["seq"]) if messages else 0


async def count_messages(client: httpx.AsyncClient, mailbox: Mailbox) -> int:
    """How many messages the mailbox lists, page by page."""
    total = 0
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/api/messages", params=params, headers=mailbox.auth)
        response.raise_for_status()
        page = response.json()
        total += len(page["messages"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100, nearest rank), or None with no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "python": sys.version}


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
