"""The local launcher behind ``tmpmail up``, ``down`` and ``status``.

``up`` provisions what is missing, starts Kafka (and the FerretDB stand-in for
``--store mongodb`` with a loopback ``TMPMAIL_MONGO_URL``), creates every topic, then
starts streams, api and ingest as child processes, each in its own session, and waits
until each one is ready. Streams runs as ``TMPMAIL_STREAMS_PROCESSES`` workers of one
consumer group, named ``streams-0`` .. ``streams-<N-1>``; ingest as
``TMPMAIL_INGEST_PROCESSES`` processes on one SMTP port (SO_REUSEPORT), named
``ingest-0`` .. ``ingest-<N-1>``. State lives under
``settings.state_dir``: ``logs/<name>.log``, ``run/<name>.pid``, ``run/stack.json`` (what
``up`` started) and the data directories.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Literal
from urllib.parse import urlsplit

from deploy import health, kafka, provision
from deploy.procs import (
    PidFile,
    can_bind,
    describe_pids,
    port_holders,
    stop_groups,
    wait_until,
)
from deploy.procs import spawn as spawn_process
from schemas.settings import Settings

Store = Literal["sqlite", "mongodb"]
Output = Callable[[str], None]

#: Start order of the roles; ``down`` stops in the reverse order, Kafka last. Each role
#: of :data:`SCALED_ROLES` runs as ``<role>-0`` .. ``<role>-<N-1>`` (:func:`process_name`).
PROCESS_ORDER = ("kafka", "ferretdb", "streams", "api", "ingest")
SCALED_ROLES = ("streams", "ingest")
LAUNCHER = "launcher"
SCALED_NAME = re.compile(rf"({'|'.join(SCALED_ROLES)})-(0|[1-9][0-9]*)")

KAFKA_READY_TIMEOUT_S = 60.0
FERRETDB_READY_TIMEOUT_S = 30.0
TOPICS_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = {"kafka": 30.0, "ferretdb": 10.0, "streams": 20.0, "api": 15.0, "ingest": 15.0}
LAUNCHER_STOP_TIMEOUT_S = 120.0
PORT_RELEASE_TIMEOUT_S = 5.0
READY_POLL_S = 0.2


class LaunchError(RuntimeError):
    """The stack cannot start or stop as asked; the message says what to do."""


def process_name(role: str, index: int) -> str:
    """``ingest-3``: process ``index`` of a role of :data:`SCALED_ROLES`."""
    return f"{role}-{index}"


def scaled(name: str) -> tuple[str, int] | None:
    """``("ingest", 3)`` for ``ingest-3``; None for a name not of a scaled role's process."""
    match = SCALED_NAME.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match else None


def role_of(name: str) -> str:
    """The role in :data:`PROCESS_ORDER` of process ``name``: ``ingest`` for ``ingest-3``."""
    found = scaled(name)
    return found[0] if found else name


def start_order(name: str) -> tuple[int, int]:
    """Sort key: by role in :data:`PROCESS_ORDER`, a scaled role's processes by index."""
    found = scaled(name)
    return PROCESS_ORDER.index(role_of(name)), found[1] if found else 0


def service_command(name: str) -> list[str]:
    """How the launcher runs service ``name`` (``api``, ``streams-<i>``, ``ingest-<i>``)."""
    found = scaled(name)
    args = [name] if found is None else [found[0], "--index", str(found[1])]
    return [sys.executable, "-m", "deploy.cli", *args]


@dataclass(frozen=True)
class Port:
    """One TCP port the stack listens on, and the variable that changes it."""

    role: str
    host: str
    port: int
    variable: str


@dataclass(frozen=True)
class Plan:
    """What ``up`` runs for one store choice."""

    store: Store
    local_kafka: bool
    local_mongo: bool
    ports: tuple[Port, ...]
    ingest_processes: int = 1
    streams_processes: int = 1

    def names(self, role: str) -> list[str]:
        """The processes of ``role``: ``[role]``, or its N of :data:`SCALED_ROLES`."""
        if role not in SCALED_ROLES:
            return [role]
        count = self.ingest_processes if role == "ingest" else self.streams_processes
        return [process_name(role, index) for index in range(count)]

    @property
    def processes(self) -> list[str]:
        """Every process ``up`` starts, in start order."""
        wanted = {"kafka": self.local_kafka, "ferretdb": self.local_mongo}
        roles = [role for role in PROCESS_ORDER if wanted.get(role, True)]
        return [name for role in roles for name in self.names(role)]


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def kafka_is_local(settings: Settings) -> bool:
    """Every bootstrap server is on this machine: ``up`` runs the broker itself."""
    hosts = [server.strip().rpartition(":")[0] for server in settings.kafka_bootstrap.split(",")]
    return all(is_loopback(host) for host in hosts)


def mongo_is_local(settings: Settings) -> bool:
    """The Mongo URL names one loopback host: ``up`` runs the FerretDB stand-in there."""
    url = urlsplit(settings.mongo_url.get_secret_value())
    if url.scheme != "mongodb" or "," in url.netloc:
        return False
    return is_loopback(url.hostname)


def make_plan(settings: Settings, store: Store) -> Plan:
    local_kafka = kafka_is_local(settings)
    local_mongo = store == "mongodb" and mongo_is_local(settings)
    ports = [
        Port("smtp", settings.smtp_host, settings.smtp_port, "TMPMAIL_SMTP_PORT"),
        Port("http", settings.http_host, settings.http_port, "TMPMAIL_HTTP_PORT"),
    ]
    if local_kafka:
        ports += [
            Port("kafka", kafka.LISTEN_HOST, settings.kafka_port, "TMPMAIL_KAFKA_BOOTSTRAP"),
            Port(
                "kafka controller",
                kafka.LISTEN_HOST,
                settings.kafka_controller_port,
                "TMPMAIL_KAFKA_CONTROLLER_PORT",
            ),
        ]
    if local_mongo:
        ports.append(Port("mongo", "127.0.0.1", settings.mongo_port, "TMPMAIL_MONGO_URL"))
    return Plan(
        store,
        local_kafka,
        local_mongo,
        tuple(ports),
        settings.ingest_processes,
        settings.streams_processes,
    )


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While starting, SIGTERM aborts like Ctrl-C, so what was started gets stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is interrupt:  # not replaced by StopSignals
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Stopping is bounded by its own timeouts: a second Ctrl-C must not cut it short."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StopSignals:
    """In the foreground: SIGINT/SIGTERM ask to stop; SIGCHLD wakes the supervisor."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.received: list[str] = []
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGCHLD, self._on_child)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)
        self.wake.set()

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        self.wake.set()


class Launcher:
    """Starts, supervises, stops and reports the local processes of one state directory."""

    def __init__(self, settings: Settings, out: Output = print) -> None:
        self.settings = settings
        self.out = out
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    # --- paths -----------------------------------------------------------------------
    def pid_file(self, name: str) -> PidFile:
        return PidFile(self.settings.run_dir / f"{name}.pid")

    def log_path(self, name: str) -> Path:
        return self.settings.log_dir / f"{name}.log"

    @property
    def stack_file(self) -> Path:
        return self.settings.run_dir / "stack.json"

    def known_processes(self) -> list[str]:
        """Every process of ours that may run, in start order: each role not scaled, and
        each process of a scaled role with a pid file (whatever the N of the run that
        started it) or started by this launcher (its pid file may not be written yet)."""
        with_pid_files = {path.stem for path in self.settings.run_dir.glob("*.pid")}
        numbered = [n for n in with_pid_files | set(self.children) if scaled(n) is not None]
        others = [role for role in PROCESS_ORDER if role not in SCALED_ROLES]
        return sorted([*others, *numbered], key=start_order)

    def running(self) -> dict[str, int]:
        """Our live processes by name (launcher included); stale pid files are removed."""
        live = {}
        for name in (LAUNCHER, *self.known_processes()):
            pid_file = self.pid_file(name)
            pid = pid_file.live_pid()
            if pid is not None:
                live[name] = pid
            elif pid_file.path.exists():
                pid_file.remove()
        return live

    def recorded_plan(self) -> Plan:
        """The plan ``up`` recorded, or the default one for the configured store."""
        try:
            record = json.loads(self.stack_file.read_text())
            return Plan(
                store=record["store"],
                local_kafka=record["local_kafka"],
                local_mongo=record["local_mongo"],
                ports=tuple(Port(**port) for port in record["ports"]),
                ingest_processes=record.get("ingest_processes", 1),
                streams_processes=record.get("streams_processes", 1),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return make_plan(self.settings, self.settings.store)

    # --- up --------------------------------------------------------------------------
    def up(self, store: Store, detach: bool, timeout_s: float) -> int:
        plan = make_plan(self.settings, store)
        for directory in (self.settings.log_dir, self.settings.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        self._refuse_taken_ports(plan)
        self.pid_file(LAUNCHER).write(os.getpid())
        try:
            with _sigterm_as_interrupt():
                libs = self._provision(plan)
                self._start_stack(plan, libs, timeout_s)
                signals = None if detach else StopSignals()
        except BaseException:
            self.out("tmpmail: start-up failed or interrupted; stopping what was started...")
            with _signals_ignored():
                self.stop_all(quiet=True)
                self.pid_file(LAUNCHER).remove()
            raise
        self.stack_file.write_text(json.dumps(asdict(plan), indent=2))
        self._print_addresses(plan)
        if signals is None:
            self.pid_file(LAUNCHER).remove()
            self.out("tmpmail is running in the background: `tmpmail status`, `tmpmail down`.")
            return 0
        return self._supervise(signals)

    def _refuse_if_running(self) -> None:
        live = self.running()
        if live:
            listed = ", ".join(f"{name} (pid {pid})" for name, pid in live.items())
            raise LaunchError(
                f"tmpmail is already running from {self.settings.state_dir}: {listed}.\n"
                "`tmpmail status` shows it; `tmpmail down` stops it."
            )

    def _refuse_taken_ports(self, plan: Plan) -> None:
        for port in plan.ports:
            if not can_bind(port.host, port.port):
                holders = describe_pids(port_holders(port.port))
                raise LaunchError(
                    f"port {port.port} ({port.role}, {port.host}) is in use by {holders}.\n"
                    f"Stop that process, or choose another port with {port.variable}."
                )

    def _provision(self, plan: Plan) -> Path | None:
        state = self.settings.state_dir
        try:
            libs = provision.ensure_kafka_libs(state, self.out) if plan.local_kafka else None
            if plan.local_mongo:
                provision.ensure_ferretdb_binary(state, self.out)
        except provision.ProvisionError as exc:
            raise LaunchError(f"provisioning failed: {exc}") from exc
        return libs

    def _start_stack(self, plan: Plan, libs: Path | None, timeout_s: float) -> None:
        if libs is not None:
            self._start_kafka(libs)
        if plan.local_mongo:
            self._start_ferretdb()
        self._create_topics()
        self._start_services(plan.names("streams"), plan, timeout_s)
        self._start_services([*plan.names("api"), *plan.names("ingest")], plan, timeout_s)

    def _start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_path(name)
        proc = spawn_process(cmd, log, env if env is not None else dict(os.environ))
        self.children[name] = proc
        self.pid_file(name).write(proc.pid)
        self.out(f"started {name} (pid {proc.pid}, log {log})")

    def _start_kafka(self, libs: Path) -> None:
        started = time.monotonic()
        kafka.write_config(self.settings)
        try:
            if kafka.ensure_formatted(self.settings, libs):
                self.out(f"formatted Kafka storage in {kafka.kafka_dir(self.settings) / 'data'}")
        except kafka.KafkaSetupError as exc:
            raise LaunchError(str(exc)) from exc
        self._start("kafka", kafka.broker_command(self.settings, libs))
        self._await_ready(["kafka"], KAFKA_READY_TIMEOUT_S, started)

    def _start_ferretdb(self) -> None:
        started = time.monotonic()
        binary = provision.ensure_ferretdb_binary(self.settings.state_dir, self.out)
        data = self.settings.state_dir / "ferretdb"
        data.mkdir(parents=True, exist_ok=True)
        listen = f"127.0.0.1:{self.settings.mongo_port}"
        self._start("ferretdb", [str(binary), "-listen", listen, "-data", str(data)])
        self._await_ready(["ferretdb"], FERRETDB_READY_TIMEOUT_S, started)

    def _create_topics(self) -> None:
        started = time.monotonic()
        from bus.admin import ensure_topics

        try:
            ensure_topics(self.settings, timeout_s=TOPICS_TIMEOUT_S)
        except Exception as exc:
            raise LaunchError(
                f"creating the Kafka topics failed: {exc}\n"
                f"Check the broker at {self.settings.kafka_bootstrap} "
                f"(log: {self.log_path('kafka')})."
            ) from exc
        self.out(f"topics ready in {time.monotonic() - started:.1f}s")

    def _service_env(self, plan: Plan) -> dict[str, str]:
        env = dict(os.environ)
        env["TMPMAIL_STORE"] = plan.store
        env["TMPMAIL_STATE_DIR"] = str(self.settings.state_dir)
        env["TMPMAIL_INGEST_PROCESSES"] = str(plan.ingest_processes)
        env["TMPMAIL_STREAMS_PROCESSES"] = str(plan.streams_processes)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start_services(self, names: list[str], plan: Plan, timeout_s: float) -> None:
        started = time.monotonic()
        env = self._service_env(plan)
        for name in names:
            self._start(name, service_command(name), env)
        self._await_ready(names, timeout_s, started)
        workers = [name for name in names if role_of(name) == "streams"]
        if workers:
            self._await_settled(workers, timeout_s, started)

    # --- readiness -------------------------------------------------------------------
    def probe(self, name: str, pid: int | None) -> bool:
        settings = self.settings
        if name == "kafka":
            return health.kafka_ready(settings)
        if name == "ferretdb":
            return health.tcp_ready("127.0.0.1", settings.mongo_port)
        if name == "api":
            return health.api_ready(settings)
        found = scaled(name)
        if found is not None and found[0] == "streams":
            return health.streams_process_ready(settings, found[1], pid)
        if found is not None and found[0] == "ingest":
            return health.ingest_process_ready(settings, found[1], pid)
        raise ValueError(f"unknown process {name!r}")

    def _exited(self, name: str) -> LaunchError | None:
        proc = self.children[name]
        if proc.poll() is None:
            return None
        return LaunchError(
            f"{name} exited with code {proc.returncode} before it was ready; "
            f"its log is {self.log_path(name)}:\n{log_tail(self.log_path(name))}"
        )

    def _await_ready(self, names: list[str], timeout_s: float, started: float) -> None:
        deadline = started + timeout_s
        pending = list(names)
        while pending:
            for name in list(pending):
                exited = self._exited(name)
                if exited is not None:
                    raise exited
                if self.probe(name, self.children[name].pid):
                    pending.remove(name)
                    self.out(f"{name} ready in {time.monotonic() - started:.1f}s")
            if pending and time.monotonic() >= deadline:
                name = pending[0]
                raise LaunchError(
                    f"{name} was not ready within {timeout_s:.0f}s; "
                    f"its log is {self.log_path(name)}:\n{log_tail(self.log_path(name))}"
                )
            if pending:
                time.sleep(READY_POLL_S)

    def _await_settled(self, workers: list[str], timeout_s: float, started: float) -> None:
        """Wait until the streams workers' ready files name each raw-mail partition once:
        the consumer group has settled (one worker alone settles at once)."""
        deadline = started + timeout_s
        while not health.streams_group_settled(self.settings, len(workers)):
            for name in workers:
                exited = self._exited(name)
                if exited is not None:
                    raise exited
            if time.monotonic() >= deadline:
                raise LaunchError(
                    f"the {len(workers)} streams workers did not settle on the "
                    f"{self.settings.topic_partitions} raw-mail partitions within "
                    f"{timeout_s:.0f}s; their logs are {self.log_path('streams-*')}"
                )
            time.sleep(READY_POLL_S)
        if len(workers) > 1:
            self.out(
                f"streams workers settled on {self.settings.topic_partitions} partitions "
                f"in {time.monotonic() - started:.1f}s"
            )

    def _print_addresses(self, plan: Plan) -> None:
        settings = self.settings
        self.out(
            f"tmpmail is ready (store: {plan.store}).\n"
            f"  SMTP: {settings.smtp_host}:{settings.smtp_port} "
            f"(domains: {', '.join(settings.domains)})\n"
            f"  Web:  {settings.http_url}/ (the inbox)\n"
            f"  API:  {settings.http_url}/api (OpenAPI: {settings.http_url}/docs)\n"
            f"  Logs: {settings.log_dir}"
        )

    # --- foreground supervision -------------------------------------------------------
    def _supervise(self, signals: StopSignals) -> int:
        self.out("Press Ctrl-C to stop.")
        code = 0
        while not signals.received:
            dead = [(name, p) for name, p in self.children.items() if p.poll() is not None]
            if dead:
                name, proc = dead[0]
                self.out(
                    f"tmpmail: {name} (pid {proc.pid}) exited unexpectedly with code "
                    f"{proc.returncode}; its log is {self.log_path(name)}:\n"
                    f"{log_tail(self.log_path(name))}"
                )
                code = 1
                break
            signals.wake.wait(1.0)
            signals.wake.clear()
        self.out("tmpmail: stopping...")
        with _signals_ignored():
            self.stop_all()
            self._forget_stack()
        return code

    # --- down ------------------------------------------------------------------------
    def down(self) -> int:
        plan = self.recorded_plan()
        launcher = self.pid_file(LAUNCHER).live_pid()
        if launcher is not None and launcher != os.getpid():
            self.out(f"stopping the foreground launcher (pid {launcher})...")
            os.kill(launcher, signal.SIGTERM)
            if not wait_until(
                lambda: self.pid_file(LAUNCHER).live_pid() is None, LAUNCHER_STOP_TIMEOUT_S
            ):
                self.out(f"the launcher (pid {launcher}) did not stop; stopping its children")
        clean = self.stop_all()
        self._forget_stack()
        if not self._ports_released(plan):
            clean = False
        self.out("tmpmail stopped." if clean else "tmpmail down: see the messages above.")
        return 0 if clean else 1

    def stop_all(self, quiet: bool = False) -> bool:
        """Stop every process of ours, services first and Kafka last; True if all ended.

        The processes of one role (the ingest processes) are stopped together."""
        names = self.known_processes()
        clean = True
        for role in reversed(PROCESS_ORDER):
            clean = self._stop([name for name in names if role_of(name) == role], quiet) and clean
        return clean

    def _stop(self, names: list[str], quiet: bool) -> bool:
        """Stop the processes ``names`` of one role at once; True if all ended."""
        pids = {}
        for name in names:
            pid = self.pid_file(name).live_pid()
            child = self.children.get(name)
            if pid is None and child is not None and child.poll() is None:
                pid = child.pid  # started, but interrupted before its pid file was written
            if pid is not None:
                pids[name] = pid
                if not quiet:
                    self.out(f"stopping {name} (pid {pid})...")
        started = time.monotonic()
        timeout_s = max((STOP_TIMEOUT_S[role_of(name)] for name in pids), default=0.0)
        outcomes = stop_groups(list(pids.values()), timeout_s)
        for name, pid in pids.items():
            if outcomes[pid] != "stopped" or not quiet:
                self.out(f"{name} {outcomes[pid]} in {time.monotonic() - started:.1f}s")
        for name in names:
            self.pid_file(name).remove()
            child = self.children.pop(name, None)
            if child is not None:
                child.poll()  # reap it
        return "stuck" not in outcomes.values()

    def _forget_stack(self) -> None:
        """Once everything has stopped: no launcher, no plan, no stale ready file."""
        self.pid_file(LAUNCHER).remove()
        self.stack_file.unlink(missing_ok=True)
        for role in SCALED_ROLES:
            for ready_file in self.settings.run_dir.glob(f"{role}-*.ready"):
                ready_file.unlink(missing_ok=True)

    def _ports_released(self, plan: Plan) -> bool:
        def all_free() -> bool:
            return all(can_bind(port.host, port.port) for port in plan.ports)

        if wait_until(all_free, PORT_RELEASE_TIMEOUT_S):
            return True
        for port in plan.ports:
            if not can_bind(port.host, port.port):
                self.out(
                    f"port {port.port} ({port.role}) is still held by "
                    f"{describe_pids(port_holders(port.port))}, which tmpmail did not start "
                    f"or could not stop."
                )
        return False

    # --- status ----------------------------------------------------------------------
    def port_of(self, name: str) -> int | None:
        settings = self.settings
        return {
            "kafka": settings.kafka_port,
            "ferretdb": settings.mongo_port,
            "api": settings.http_port,
            "ingest": settings.smtp_port,
        }.get(role_of(name))

    def status(self) -> int:
        live = self.running()
        if not self.stack_file.exists() and not live:
            self.out(f"tmpmail is not running (state: {self.settings.state_dir}).")
            return 1
        expected = self.recorded_plan().processes
        names = sorted(set(expected) | (set(live) - {LAUNCHER}), key=start_order)
        width = max([9, *(len(name) + 1 for name in names)])
        all_alive = True
        for name in names:
            pid = live.get(name)
            ready = pid is not None and self.probe(name, pid)
            port = self.port_of(name)
            all_alive = all_alive and pid is not None
            self.out(
                f"{name:<{width}} pid={pid if pid else '-':<8} alive={'yes' if pid else 'no':<4}"
                f"ready={'yes' if ready else 'no':<4}port={port if port else '-':<6}"
                f"log={self.log_path(name)}"
            )
        if LAUNCHER in live:
            self.out(f"{LAUNCHER:<{width}} pid={live[LAUNCHER]} (foreground `tmpmail up`)")
        return 0 if all_alive else 1
