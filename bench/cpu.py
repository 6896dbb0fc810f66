"""The CPU each process of a bench used over a measured window, in % of one core.

    meter = CpuMeter({"ingest": ingest_pids, "kafka": kafka_pids, ...})
    with meter.window() as window:
        ...  # the measured work
    window.shares  # {"ingest": 61.0, "kafka": 40.2, ..., "load": 80.1, "other": 12.5}

Each role is a function that names its processes' pids when asked (a service restarted
in between is found again); a role counts those processes and all their descendants
(utime + stime of every thread, from psutil). ``load`` is this process (the load
generator's asyncio clients and SSE readers run here) plus the children it reaped during
the window (each smtp-source run). ``other`` is the rest of the machine's busy time:
everything that is not ours, such as other people's work on a shared machine. With two
cores, the shares add up to at most 200%.

psutil comes with the ``bench`` extra (``pip install -e '.[bench]'``, ``make bench``).
:func:`shares` is the pure arithmetic, tested without psutil.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Pids = Callable[[], Iterable[int]]

LOAD = "load"
OTHER = "other"


class MissingExtra(RuntimeError):
    """The ``bench`` extra is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds used so far: by each role's processes (by pid), by this process, by
    its reaped children, and by the whole machine (busy, all CPUs), at ``wall`` s."""

    wall: float
    roles: dict[str, dict[int, float]]
    own: float
    children: float
    machine: float | None


def shares(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Each role's CPU between two snapshots, plus ``load`` and ``other``, in % of one core.

    A process present in both counts its difference; one that appeared in between counts
    all it used (it started in the window); one that went away counts nothing (its last
    figures are unknown).
    """
    wall = after.wall - before.wall
    if wall <= 0:
        return {}

    def pct(seconds: float) -> float:
        return round(100 * max(0.0, seconds) / wall, 1)

    used: dict[str, float] = {}
    for role, now in after.roles.items():
        then = before.roles.get(role, {})
        if not now and not then:
            continue  # no process of that role (a service this stack does not run)
        used[role] = sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items())
    used[LOAD] = (after.own - before.own) + (after.children - before.children)
    result = {role: pct(seconds) for role, seconds in used.items()}
    if before.machine is not None and after.machine is not None:
        result[OTHER] = pct((after.machine - before.machine) - sum(used.values()))
    return result


@dataclass
class Window:
    """One measured window: filled in when its ``with`` block ends."""

    started: float = 0.0
    seconds: float = 0.0
    shares: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "cpu_pct": self.shares}


class CpuMeter:
    """Snapshots of the CPU of named roles (see the module docstring)."""

    def __init__(self, roles: dict[str, Pids] | None = None) -> None:
        try:
            import psutil  # the bench extra; imported here so that `shares` needs nothing
        except ImportError:
            raise MissingExtra(
                "psutil is missing: `make bench` installs it, or run "
                "`.venv/bin/pip install -e '.[bench]'`"
            ) from None

        self._psutil = psutil
        self.roles: dict[str, Pids] = dict(roles or {})
        self._self = psutil.Process()

    def add(self, role: str, pids: Pids) -> None:
        self.roles[role] = pids

    def remove(self, role: str) -> None:
        self.roles.pop(role, None)

    def snapshot(self) -> Snapshot:
        psutil = self._psutil
        roles: dict[str, dict[int, float]] = {}
        for role, pids in self.roles.items():
            found: dict[int, float] = {}
            for pid in pids():
                for proc in self._tree(pid):
                    try:
                        times = proc.cpu_times()
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        continue
                    found[proc.pid] = times.user + times.system
            roles[role] = found
        own = self._self.cpu_times()
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        # guest time is counted inside user time already
        busy -= getattr(machine, "guest", 0.0) + getattr(machine, "guest_nice", 0.0)
        return Snapshot(
            wall=time.perf_counter(),
            roles=roles,
            own=own.user + own.system,
            children=own.children_user + own.children_system,
            machine=busy,
        )

    def _tree(self, pid: int) -> list[Any]:
        psutil = self._psutil
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return []

    @contextmanager
    def window(self) -> Iterator[Window]:
        """Measure the ``with`` block; the window's figures are set when it ends."""
        window = Window()
        before = self.snapshot()
        window.started = before.wall
        try:
            yield window
        finally:
            after = self.snapshot()
            window.seconds = after.wall - before.wall
            window.shares = shares(before, after)
