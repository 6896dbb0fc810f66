"""Local processes on Linux: pid files, own process groups, bounded stops, port owners.

Every process the launcher starts runs in a session (and process group) of its own,
so that a terminal's Ctrl-C reaches only the launcher and a stop reaches a service
together with anything it forked. A pid file records the pid and the process's start
time, so that a reused pid is never mistaken for ours.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LOG_ROTATE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ProcInfo:
    """What ``/proc/<pid>/stat`` says about one process."""

    pid: int
    state: str
    pgrp: int
    start_ticks: int

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def proc_info(pid: int) -> ProcInfo | None:
    """The process ``pid``, or None if there is none."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid pgrp ..." — comm may hold spaces and parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcInfo(pid=pid, state=fields[0], pgrp=int(fields[2]), start_ticks=int(fields[19]))


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


# --- pid files -----------------------------------------------------------------------


@dataclass(frozen=True)
class PidFile:
    """``<run>/<name>.pid``: JSON with the pid and its start time in clock ticks."""

    path: Path

    def write(self, pid: int) -> None:
        info = proc_info(pid)
        record = {"pid": pid, "start_ticks": info.start_ticks if info else None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path)

    def read(self) -> tuple[int, int | None] | None:
        try:
            record = json.loads(self.path.read_text())
            return int(record["pid"]), record.get("start_ticks")
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def live_pid(self) -> int | None:
        """The recorded pid if that very process is still running (not a zombie)."""
        record = self.read()
        if record is None:
            return None
        pid, start_ticks = record
        info = proc_info(pid)
        if info is None or info.zombie:
            return None
        if start_ticks is not None and info.start_ticks != start_ticks:
            return None
        return pid

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# --- starting and stopping -----------------------------------------------------------


def spawn(
    cmd: list[str], log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session, stdin from /dev/null, output appended to ``log_path``.

    A log past :data:`LOG_ROTATE_BYTES` is first moved to ``<name>.log.1`` (one generation).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists() and log_path.stat().st_size > LOG_ROTATE_BYTES:
        log_path.replace(log_path.with_name(log_path.name + ".1"))
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def live_groups(pgids: Collection[int]) -> set[int]:
    """Those of the process groups ``pgids`` that still have a live (non-zombie) member."""
    live = set()
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info is not None and info.pgrp in pgids and not info.zombie:
                live.add(info.pgrp)
    return live


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_group(pgid: int, timeout_s: float, kill_timeout_s: float = 5.0) -> str:
    """SIGTERM process group ``pgid``, wait, then SIGKILL; say how it ended.

    Returns ``"stopped"``, ``"killed"`` or ``"stuck"`` (alive even after SIGKILL).
    """
    return stop_groups([pgid], timeout_s, kill_timeout_s)[pgid]


def stop_groups(
    pgids: Collection[int], timeout_s: float, kill_timeout_s: float = 5.0
) -> dict[int, str]:
    """:func:`stop_group` for several groups at once: one wait for all, not one each."""
    outcomes = dict.fromkeys(pgids, "stopped")
    asked = live_groups(outcomes)
    for pgid in asked:
        _signal_group(pgid, signal.SIGTERM)
    wait_until(lambda: not live_groups(asked), timeout_s)
    killed = live_groups(asked)
    for pgid in killed:
        _signal_group(pgid, signal.SIGKILL)
        outcomes[pgid] = "killed"
    wait_until(lambda: not live_groups(killed), kill_timeout_s)
    for pgid in live_groups(killed):
        outcomes[pgid] = "stuck"
    return outcomes


# --- ports ---------------------------------------------------------------------------

_LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == _LISTEN:
                inodes.add(fields[9])
    return inodes


def port_holders(port: int) -> list[int]:
    """Pids of the processes listening on TCP ``port`` (any address), as far as visible."""
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        if _fd_links(entry / "fd") & wanted:
            holders.append(int(entry.name))
    return holders


def _fd_links(fd_dir: Path) -> set[str]:
    """Targets of the open descriptors in ``fd_dir``; those that close meanwhile are skipped."""
    links: set[str] = set()
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return links
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:
            continue
    return links


def is_listening(port: int) -> bool:
    return bool(_listening_inodes(port))


def can_bind(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now (TIME_WAIT does not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def describe_pids(pids: list[int]) -> str:
    if not pids:
        return "a process this user cannot see"
    return ", ".join(f"pid {pid} ({command_line(pid)[:80]})" for pid in pids)
