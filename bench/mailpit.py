"""Mailpit, the reference of ``make bench``: built once with Go, run on ports of its own.

    .venv/bin/python -m bench.mailpit build            # once; about 30 s, then instant
    .venv/bin/python -m bench.mailpit run --smtp-port 25527 --http-port 28701

:func:`mailpit_binary` builds Mailpit with ``go install github.com/axllent/mailpit@v1.27.11``
from the Go module proxy into ``.tmpmail-tools/mailpit/bin`` (``GOBIN``), printing each
package as it compiles (``-v``) and a line every few seconds while it works; later calls,
in any process, find the binary (a stamp names the version, a file lock makes concurrent
first calls build once). Nothing of Mailpit is vendored: it is a reference binary.

:class:`Mailpit` runs it on loopback ports of its own with a fresh database file and no
message limit (Mailpit keeps 500 by default and prunes the rest, which would stop its
count), reverse DNS off, and stops it with SIGTERM. :func:`parse_total` reads how many
messages Mailpit stores from ``GET /api/v1/messages`` (pure, tested).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.refs import REPO, TOOLS_DIR, file_lock

MAILPIT_DIR = TOOLS_DIR / "mailpit"
MODULE = "github.com/axllent/mailpit"
VERSION = "v1.27.11"

HOST = "127.0.0.1"
BUILD_TIMEOUT_S = 900.0
HEARTBEAT_S = 5.0
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

Progress = Callable[[str], None]


class MailpitError(RuntimeError):
    """Mailpit cannot be built, started or read; the message says what to do."""


def _say(message: str) -> None:
    print(f"bench.mailpit: {message}", file=sys.stderr, flush=True)


# --- the build ------------------------------------------------------------------------------


def binary_path() -> Path:
    return MAILPIT_DIR / "bin" / "mailpit"


def mailpit_binary(progress: Progress = _say) -> Path:
    """The Mailpit binary, built with ``go install`` on first use."""
    binary = binary_path()
    stamp = MAILPIT_DIR / "built.json"
    if _built(stamp, binary):
        return binary
    with file_lock(MAILPIT_DIR / ".lock"):
        if _built(stamp, binary):
            return binary  # another process built it while we waited
        go = shutil.which("go")
        if go is None:
            raise MailpitError(
                "`go` is not on PATH: Mailpit, the reference, is built from the Go module "
                f"proxy with `go install {MODULE}@{VERSION}`. Install Go 1.24 or newer "
                "(https://go.dev/dl/) and retry."
            )
        stamp.unlink(missing_ok=True)
        _go_install(go, binary.parent, progress)
        if not binary.exists():
            raise MailpitError(f"`go install {MODULE}@{VERSION}` left no {binary}")
        stamp.write_text(json.dumps({"module": MODULE, "version": VERSION, "at": time.time()}))
    return binary


def _built(stamp: Path, binary: Path) -> bool:
    try:
        record = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("version") == VERSION and binary.exists()


def _go_install(go: str, gobin: Path, progress: Progress) -> None:
    gobin.mkdir(parents=True, exist_ok=True)
    target = f"{MODULE}@{VERSION}"
    progress(f"building Mailpit: GOBIN={gobin} go install -v {target} (once; about 30 s)")
    env = dict(os.environ, GOBIN=str(gobin))
    began = time.monotonic()
    proc = subprocess.Popen(
        [go, "install", "-v", target],
        cwd=MAILPIT_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_S):
            last = lines[-1].strip() if lines else "resolving modules"
            progress(
                f"  building Mailpit, {time.monotonic() - began:.0f}s: "
                f"{len(lines)} packages so far ({last})"
            )

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if time.monotonic() - began > BUILD_TIMEOUT_S:
                proc.kill()
                raise MailpitError(f"`go install {target}` took over {BUILD_TIMEOUT_S:.0f}s")
        code = proc.wait()
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        tail = "".join(lines[-20:]).strip()
        raise MailpitError(
            f"`go install {target}` failed (exit {code}):\n{tail}\n"
            f"Check that the Go module proxy is reachable (GOPROXY={_go_env(go, 'GOPROXY')}) "
            "and that Go is 1.24 or newer (`go version`)."
        )
    progress(f"Mailpit {VERSION} built in {time.monotonic() - began:.0f}s: {gobin / 'mailpit'}")


def _go_env(go: str, name: str) -> str:
    proc = subprocess.run([go, "env", name], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "?"


# --- reading it -----------------------------------------------------------------------------


def parse_total(body: Any) -> int:
    """How many messages Mailpit stores, from a ``GET /api/v1/messages`` answer (JSON).

    Mailpit names it ``total`` (``messages_count`` too, in newer versions: the count of
    a search); a missing or non-integer count is an error, never 0.
    """
    if not isinstance(body, dict):
        raise MailpitError(f"GET /api/v1/messages: not a JSON object: {str(body)[:200]}")
    for key in ("total", "messages_count"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    raise MailpitError(f"GET /api/v1/messages: no message count in {sorted(body)[:20]}")


# --- running it -----------------------------------------------------------------------------


class Mailpit:
    """Mailpit on ``HOST:smtp_port`` (SMTP) and ``HOST:http_port`` (web and API)."""

    def __init__(self, smtp_port: int, http_port: int, data_dir: Path) -> None:
        self.smtp_port = smtp_port
        self.http_port = http_port
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def database(self) -> Path:
        return self.data_dir / "mailpit.db"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mailpit.log"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None or self.proc.poll() is not None else self.proc.pid

    def command(self, binary: Path) -> list[str]:
        return [
            str(binary),
            "--smtp",
            f"{HOST}:{self.smtp_port}",
            "--listen",
            f"{HOST}:{self.http_port}",
            "--database",
            str(self.database),
            "--max",
            "0",
            "--smtp-disable-rdns",
            "--disable-version-check",
            "--quiet",
        ]

    def start(self, binary: Path, progress: Progress = _say) -> None:
        from bench.ingest import port_accepts, port_is_free  # no cycle at import time

        for what, port in (("SMTP", self.smtp_port), ("HTTP", self.http_port)):
            if not port_is_free(port):
                raise MailpitError(f"Mailpit's {what} port {port} is taken: choose another")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.remove_database()
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                self.command(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise MailpitError(
                    f"Mailpit exited {self.proc.returncode} at start:\n{self.log_tail()}"
                )
            if port_accepts(self.smtp_port) and self._answers():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise MailpitError(
                    f"Mailpit did not answer within {READY_TIMEOUT_S:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        progress(
            f"Mailpit {VERSION} on SMTP {HOST}:{self.smtp_port}, HTTP {self.http_url}, "
            f"pid {self.proc.pid}"
        )

    def _answers(self) -> bool:
        try:
            response = httpx.get(f"{self.http_url}/api/v1/info", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def remove_database(self) -> None:
        """Remove the database of a stopped Mailpit (its log stays)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.database}{suffix}").unlink(missing_ok=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log_path})"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http_url, timeout=httpx.Timeout(30.0))


async def stored_total(client: httpx.AsyncClient) -> int:
    """How many messages the Mailpit behind ``client`` stores now."""
    response = await client.get("/api/v1/messages", params={"limit": 1})
    if response.status_code != 200:
        raise MailpitError(f"GET /api/v1/messages: {response.status_code} {response.text[:200]}")
    return parse_total(response.json())


async def delete_all(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/messages")
    if response.status_code != 200:
        raise MailpitError(f"DELETE /api/v1/messages: {response.status_code} {response.text[:200]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help=f"build Mailpit {VERSION} into {MAILPIT_DIR} (once)")
    run = sub.add_parser("run", help="build if needed, then run it until Ctrl-C")
    run.add_argument("--smtp-port", type=int, default=25527)
    run.add_argument("--http-port", type=int, default=28701)
    run.add_argument("--data-dir", type=Path, default=REPO / ".tmpmail-bench" / "mailpit")
    args = parser.parse_args(argv)
    try:
        binary = mailpit_binary()
        if args.command == "build":
            print(binary)
            return 0
        mailpit = Mailpit(args.smtp_port, args.http_port, args.data_dir)
        stops = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        mailpit.start(binary)
        try:
            signal.sigwait(stops)
        finally:
            mailpit.stop()
    except MailpitError as exc:
        print(f"bench.mailpit: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
