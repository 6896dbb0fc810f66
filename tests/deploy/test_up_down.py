"""``tmpmail up`` / ``status`` / ``down`` on the real stack, in the TEST environment.

After every ``down``: none of the processes ``up`` started remains, and nothing listens
on the stack's ports. Each test first brings down the shared test stack (conftest).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.launcher import LAUNCHER, Launcher
from deploy.procs import PidFile, is_listening, proc_info, wait_until
from schemas.settings import Settings
from tests.conftest import StackSwitch

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 900.0
COMMAND_TIMEOUT_S = 240.0
WARM_UP_LIMIT_S = 30.0


def ports_of(settings: Settings, store: str) -> list[int]:
    ports = [
        settings.smtp_port,
        settings.http_port,
        settings.kafka_port,
        settings.kafka_controller_port,
    ]
    return ports + ([settings.mongo_port] if store == "mongodb" else [])


def recorded_pids(settings: Settings) -> dict[str, int]:
    """The pid files of the stack's processes (``ingest-0`` .. for ingest), by name."""
    pids = {}
    for path in settings.run_dir.glob("*.pid"):
        record = PidFile(path).read()
        if record is not None and path.stem != LAUNCHER:
            pids[path.stem] = record[0]
    return pids


def check(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert result.returncode == 0, (
        f"{what} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    )
    return result.stdout


def assert_all_gone(settings: Settings, pids: dict[str, int], store: str) -> None:
    for name, pid in pids.items():
        info = proc_info(pid)
        assert info is None or info.zombie, f"{name} (pid {pid}) still runs after down"
    for port in ports_of(settings, store):
        assert not is_listening(port), f"something still listens on {port} after down"
    assert not list(settings.run_dir.glob("*.pid")), "pid files left behind"


def up_detached(switch: StackSwitch, store: str) -> float:
    started = time.monotonic()
    check(switch.run("up", "--detach", "--store", store, timeout_s=UP_TIMEOUT_S), f"up ({store})")
    return time.monotonic() - started


def test_up_status_down_and_a_warm_restart_sqlite(stack_switch: StackSwitch) -> None:
    switch = stack_switch
    switch.down()
    settings: Settings = switch.settings("sqlite")

    first = up_detached(switch, "sqlite")
    print(f"\nfirst up --detach (sqlite, may provision): {first:.1f}s")
    status = check(switch.run("status", timeout_s=COMMAND_TIMEOUT_S), "status")
    for name in ("kafka", "streams-0", "api", "ingest-0"):
        assert f"{name} " in status and "alive=no" not in status, status
    pids = recorded_pids(settings)
    assert set(pids) == {"kafka", "streams-0", "api", "ingest-0"}

    started = time.monotonic()
    check(switch.run("down", timeout_s=COMMAND_TIMEOUT_S), "down")
    print(f"down: {time.monotonic() - started:.1f}s")
    assert_all_gone(settings, pids, "sqlite")

    again = up_detached(switch, "sqlite")
    print(f"second up --detach (sqlite): {again:.1f}s")
    assert again < WARM_UP_LIMIT_S
    pids = recorded_pids(settings)
    check(switch.run("down", timeout_s=COMMAND_TIMEOUT_S), "down")
    assert_all_gone(settings, pids, "sqlite")


def test_up_down_mongodb_runs_ferretdb(stack_switch: StackSwitch) -> None:
    switch = stack_switch
    switch.down()
    settings: Settings = switch.settings("mongodb")

    took = up_detached(switch, "mongodb")
    print(f"\nup --detach (mongodb, may build FerretDB): {took:.1f}s")
    pids = recorded_pids(settings)
    assert set(pids) == {"kafka", "ferretdb", "streams-0", "api", "ingest-0"}
    assert is_listening(settings.mongo_port)
    check(switch.run("status", timeout_s=COMMAND_TIMEOUT_S), "status")

    check(switch.run("down", timeout_s=COMMAND_TIMEOUT_S), "down")
    assert_all_gone(settings, pids, "mongodb")


def test_make_up_status_down(stack_switch: StackSwitch) -> None:
    switch = stack_switch
    switch.down()
    settings: Settings = switch.settings("sqlite")
    env = switch.environ()

    def make(target: str) -> str:
        result = subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT_S,
            check=False,
        )
        return check(result, f"make {target}")

    assert str(settings.smtp_port) in make("up"), "make up did not use the TEST environment"
    assert str(settings.state_dir) in make("status")
    pids = recorded_pids(settings)
    make("down")
    assert_all_gone(settings, pids, "sqlite")


def _foreground_up(switch: StackSwitch) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "up", "--store", "sqlite"],
        env=switch.environ(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _await_running(settings: Settings, launcher: subprocess.Popen[str]) -> None:
    quiet = Launcher(settings, out=lambda line: None)

    def settled() -> bool:
        ready = quiet.stack_file.exists() and quiet.status() == 0  # stack.json: all ready
        return launcher.poll() is not None or ready

    started = wait_until(settled, UP_TIMEOUT_S, 0.5)
    assert started and launcher.poll() is None, launcher.stdout.read() if launcher.stdout else ""


def test_foreground_up_stops_everything_on_ctrl_c(stack_switch: StackSwitch) -> None:
    switch = stack_switch
    switch.down()
    settings: Settings = switch.settings("sqlite")
    launcher = _foreground_up(switch)
    try:
        _await_running(settings, launcher)
        pids = recorded_pids(settings)
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, output
    assert "stopping" in output
    assert_all_gone(settings, pids, "sqlite")


def test_foreground_up_reports_a_dead_child_and_stops(stack_switch: StackSwitch) -> None:
    switch = stack_switch
    switch.down()
    settings: Settings = switch.settings("sqlite")
    launcher = _foreground_up(switch)
    try:
        _await_running(settings, launcher)
        pids = recorded_pids(settings)
        os.kill(pids["api"], signal.SIGKILL)
        output, _ = launcher.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1, output
    assert "api" in output and "exited unexpectedly" in output
    assert str(settings.log_dir / "api.log") in output
    assert_all_gone(settings, pids, "sqlite")


def test_down_stops_a_foreground_up(stack_switch: StackSwitch) -> None:
    switch = stack_switch
    switch.down()
    settings: Settings = switch.settings("sqlite")
    launcher = _foreground_up(switch)
    try:
        _await_running(settings, launcher)
        pids = recorded_pids(settings)
        check(switch.run("down", timeout_s=COMMAND_TIMEOUT_S), "down")
        output, _ = launcher.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, output
    assert_all_gone(settings, pids, "sqlite")
