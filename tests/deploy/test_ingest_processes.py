"""``tmpmail up --ingest 2`` on the real stack: two ingest processes share the SMTP port.

The stack runs from a state dir and on ports of its own (not the shared test stack's), so
it runs beside that one. Which process took a connection is read from ``/proc``: the
inode of each established socket on the SMTP port, against the ``socket:[inode]`` links
in ``/proc/<pid>/fd`` of each ingest process.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from deploy import health
from deploy.procs import PROC, PidFile, is_listening, proc_info, wait_until
from schemas.settings import Settings
from tests.conftest import REPO, check_command, private_stack_environ, run_tmpmail, stack_settings

pytestmark = pytest.mark.e2e

STATE_DIR = REPO / ".tmpmail-test" / "ingest-processes"
#: Below the kernel's ephemeral range (32768-60999): a port in it can be taken at any
#: moment by the local end of some outgoing connection, and binding then fails.
SMTP_PORT = 13525
PROCESSES = 2
CONNECTIONS = 40
UP_TIMEOUT_S = 900.0
COMMAND_TIMEOUT_S = 240.0
ESTABLISHED = "01"


def environ() -> dict[str, str]:
    # Every connection below comes from 127.0.0.1.
    return private_stack_environ(
        STATE_DIR,
        SMTP_PORT,
        18500,
        19592,
        19593,
        27518,
        TMPMAIL_SMTP_MAX_CONNECTIONS_PER_CLIENT="1000",
    )


def ingest_pids(settings: Settings) -> list[int | None]:
    return [
        PidFile(settings.run_dir / f"ingest-{index}.pid").live_pid() for index in range(PROCESSES)
    ]


def accepted_socket_inodes(port: int) -> set[str]:
    """Inodes of the established sockets whose local end is ``port``: the server's ends."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == ESTABLISHED:
                inodes.add(fields[9])
    return inodes


def socket_inodes_of(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open (``socket:[inode]`` fd links)."""
    inodes = set()
    for fd in (PROC / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    return inodes


@pytest.fixture
def settings() -> Iterator[Settings]:
    """No stack before the test (a killed run's leftovers are stopped), none after it."""
    env = environ()
    settings = stack_settings("sqlite", env)
    check_command(
        run_tmpmail("down", timeout_s=COMMAND_TIMEOUT_S, env=env), "down (before)", settings
    )
    yield settings
    check_command(
        run_tmpmail("down", timeout_s=COMMAND_TIMEOUT_S, env=env), "down (after)", settings
    )


def test_two_ingest_processes_share_the_port_and_stop_together(settings: Settings) -> None:
    env = environ()
    up = ("up", "--detach", "--store", "sqlite", "--ingest", str(PROCESSES))
    output = check_command(
        run_tmpmail(*up, timeout_s=UP_TIMEOUT_S, env=env), "up --ingest 2", settings
    )
    assert "ingest-0 ready" in output and "ingest-1 ready" in output, output

    pids = ingest_pids(settings)
    assert None not in pids and len(set(pids)) == PROCESSES, pids
    live = [pid for pid in pids if pid is not None]
    for index, pid in enumerate(live):
        assert health.ingest_process_ready(settings, index, pid), f"ingest-{index} not ready"
        log = settings.log_dir / f"ingest-{index}.log"
        assert log.exists(), f"no {log}"
    check_command(
        run_tmpmail("health", "ingest", timeout_s=COMMAND_TIMEOUT_S, env=env), "health", settings
    )

    with ExitStack() as connections:
        for _ in range(CONNECTIONS):
            smtp = connections.enter_context(
                smtplib.SMTP("127.0.0.1", SMTP_PORT, local_hostname="localhost", timeout=10)
            )
            assert smtp.ehlo()[0] == 250
        accepted = accepted_socket_inodes(SMTP_PORT)
        holders = Counter[int]()
        for pid in live:
            holders[pid] = len(accepted & socket_inodes_of(pid))
        assert len(accepted) == CONNECTIONS, f"{len(accepted)} accepted sockets on the port"
        assert sum(holders.values()) == CONNECTIONS, f"held by the ingest pids: {holders}"
        assert all(holders[pid] > 0 for pid in live), f"one process took them all: {holders}"
        print(f"\nconnections per ingest process: {dict(holders)}")

    status = check_command(
        run_tmpmail("status", timeout_s=COMMAND_TIMEOUT_S, env=env), "status", settings
    )
    lines = {line.split()[0]: line for line in status.splitlines()}
    for index, pid in enumerate(live):
        line = lines[f"ingest-{index}"]
        assert f"pid={pid} " in line and "alive=yes" in line and "ready=yes" in line, status
        assert f"port={SMTP_PORT}" in line, status

    check_command(run_tmpmail("down", timeout_s=COMMAND_TIMEOUT_S, env=env), "down", settings)
    for pid in live:
        info = proc_info(pid)
        assert info is None or info.zombie, f"ingest pid {pid} still runs after down"
    assert not is_listening(SMTP_PORT), "the SMTP port is still taken after down"
    assert not list(settings.run_dir.glob("ingest-*")), "ingest pid or ready files left"


def test_foreground_up_stops_when_one_ingest_process_dies(settings: Settings) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "up", "--store", "sqlite", "--ingest", "2"],
        env=environ(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        stack_file = settings.run_dir / "stack.json"  # written once everything is ready
        up = wait_until(lambda: launcher.poll() is not None or stack_file.exists(), UP_TIMEOUT_S)
        assert up and launcher.poll() is None, launcher.stdout.read() if launcher.stdout else ""
        pids = ingest_pids(settings)
        assert None not in pids, pids
        os.kill(pids[1] or 0, signal.SIGKILL)
        output, _ = launcher.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1, output
    assert "ingest-1" in output and "exited unexpectedly" in output, output
    assert str(settings.log_dir / "ingest-1.log") in output, output
    info = proc_info(pids[0] or 0)
    assert info is None or info.zombie, "ingest-0 still runs after the launcher stopped"
    assert not is_listening(SMTP_PORT)
