"""Accept rate, CPU and 250 latency of tmpmail's SMTP ingest, beside a stock aiosmtpd sink.

Run it from the checkout (a minute or two; the first run also fetches smtp-source and
provisions Kafka in the bench state directory):

    .venv/bin/python -m bench.ingest
    .venv/bin/python -m bench.ingest --ingest-processes 2     # one ingest per core
    .venv/bin/python -m bench.ingest --no-stack --smtp-port 2525   # an ingest already up
    .venv/bin/python -m bench.ingest --sink-only              # the reference alone
    .venv/bin/python -m bench.ingest --mailpit                # Mailpit as a third target

(``.venv/bin/python bench/ingest.py`` works too.)

Without ``--no-stack`` it starts the whole stack with the project's launcher,
``python -m deploy.cli up --detach``, in ``.tmpmail-bench/stack`` on ports of its own
(SMTP 22525, HTTP 28000, Kafka 29192/29193), with the per-client connection limit
raised since every connection comes from 127.0.0.1; it runs ``down`` at the end, on
Ctrl-C and on errors too. The reference sink (:mod:`bench.sink`) runs as a process of
its own on 22526; with ``--mailpit``, Mailpit (:mod:`bench.mailpit`, built once with Go)
is a third target, on SMTP 22527 and HTTP 28002. ``make bench`` (:mod:`bench.run`) drives
the same functions with Mailpit beside the sink.

Each scenario is one run of Postfix's ``smtp-source`` (:mod:`bench.refs`) with mails of
``--size`` bytes to one recipient on a tmpmail domain, at 1, 20 and 50 connections, one
mail per connection (smtp-source's default) and with reused connections (``-d``). After
a warm-up that is not counted (``--warm-up-mails``: the broker's JIT, the producer's
connections), the targets take turns scenario by scenario. A recipient that is no
mailbox is fine here: ingest accepts any local part of its domains (streams drops the
mail later). For each target and scenario it reports:

* mails/s: the mails of the run over the wall time of the smtp-source process, which
  exits non-zero at the first refused mail (then the cell says FAIL);
* CPU of the server process(es) over that time, utime + stime from ``/proc/<pid>/stat``,
  in % of one core; for ingest the sum over every ingest process (pid files in
  ``<state>/run``, their process groups, and whoever listens on the port), and beside it
  that of the rest of the stack (kafka, streams, api), which shares the machine;
* the 250 latency p50/p99, from :mod:`bench.smtp_latency`: once under load (one extra
  connection at ``--probe-rate`` mails/s beside the 20-connection ``-d`` run) and once
  idle (``--latency-mails`` mails back to back on one connection after all the load).

With ``--rounds N`` every scenario runs N times (in turn) and the table shows medians.
It prints progress, one table, and writes the results as JSON to
``.tmpmail-bench/results/ingest-<timestamp>.json``. The load generator runs on the same
machine and takes CPU too; the machine's load average before the run is in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as bench/ingest.py: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.mailpit import Mailpit, MailpitError, mailpit_binary
from bench.refs import SmtpSource, smtp_source
from bench.smtp_latency import LatencySample, measure_250_latency
from deploy.procs import PidFile

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / ".tmpmail-bench"
STATE_DIR = BENCH_DIR / "stack"
RESULTS_DIR = BENCH_DIR / "results"

HOST = "127.0.0.1"
SENDER = "sender@example.test"
RECIPIENT = "someone@tmpmail.test"
HELO = "bench.example.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")
UP_TIMEOUT_S = 900.0
DOWN_TIMEOUT_S = 240.0
SINK_READY_TIMEOUT_S = 15.0
#: The scenario beside which the latency probe runs (connections, reused).
PROBE_SCENARIO = (20, True)

STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


# --- what is measured ----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    connections: int
    reuse: bool
    mails: int

    @property
    def name(self) -> str:
        conns = f"{self.connections} conn{'s' if self.connections > 1 else ''}"
        return f"{conns}, {'reused (-d)' if self.reuse else 'new per mail'}"


@dataclass
class Run:
    """One smtp-source run against one target."""

    exit_code: int
    wall_s: float
    mails_per_s: float | None
    cpu_pct: float | None
    client_cpu_pct: float
    pids: list[int]
    #: The rest of the stack over the same time (kafka, streams, api), when it is ours.
    stack_cpu_pct: dict[str, float] = field(default_factory=dict)
    error: str = ""
    #: The whole machine's busy CPU over the run (every process, ours or not).
    machine_cpu_pct: float | None = None


@dataclass
class Target:
    """A server under test: where it listens and how to find its processes."""

    name: str
    port: int
    fixed_pids: list[int] = field(default_factory=list)
    run_dir: Path | None = None

    def pids(self) -> list[int]:
        found = set(self.fixed_pids)
        if self.run_dir is not None:
            for path in self.run_dir.glob("ingest*.pid"):
                pid = _pid_in(path)
                if pid is not None:
                    found.add(pid)
                    # The launcher starts each service in a process group of its own, so
                    # the group holds whatever that process forked.
                    found.update(_group_members(pid))
            for path in self.run_dir.glob("ingest*.ready"):
                pid = _pid_in(path)
                if pid is not None:
                    found.add(pid)
        found.update(_listeners(self.port))
        return sorted(pid for pid in found if _cpu_ticks(pid) is not None)

    def stack_pids(self) -> dict[str, int]:
        """The other processes of the stack (kafka, streams, api...) by pid-file name."""
        if self.run_dir is None:
            return {}
        found = {}
        for path in sorted(self.run_dir.glob("*.pid")):
            if path.stem.startswith("ingest") or path.stem == "launcher":
                continue
            pid = _pid_in(path)
            if pid is not None:
                found[path.stem] = pid
        return found


def _pid_in(path: Path) -> int | None:
    """The pid in a pid file of the launcher's (JSON, see deploy.procs.PidFile), a ready
    file (JSON with "pid") or a plain-text one."""
    if path.suffix == ".pid" and PidFile(path).read() is not None:
        return PidFile(path).live_pid()  # None for a stale file, even if the pid was reused
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if isinstance(record, int):
        return record
    if isinstance(record, dict) and isinstance(record.get("pid"), int):
        return int(record["pid"])
    return None


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from its 3rd field (state) on: ``comm`` may hold spaces."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _group_members(pgid: int) -> set[int]:
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[2]) == pgid and fields[0] not in "ZX":
                members.add(int(entry.name))
    return members


def _listeners(port: int) -> set[int]:
    """Pids holding a TCP socket that listens on ``port`` (/proc/net/tcp*, /proc/*/fd)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    holders: set[int] = set()
    if not inodes:
        return holders
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    holders.add(int(entry.name))
                    break
            except OSError:
                continue
    return holders


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` (all its threads), in clock ticks."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[11]) + int(fields[12])


def _ticks_since(pid: int, ticks: int | None) -> int:
    """The CPU ticks ``pid`` used since it had ``ticks``; 0 if it is gone."""
    after = _cpu_ticks(pid)
    return 0 if ticks is None or after is None else after - ticks


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_ticks() -> int | None:
    """Clock ticks every CPU of the machine spent busy (not idle nor waiting on I/O)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4]


def smtp_source_command(
    tool: SmtpSource, scenario: Scenario, size: int, port: int, recipient: str = RECIPIENT
) -> list[str]:
    cmd = [str(tool.path), "-s", str(scenario.connections), "-m", str(scenario.mails)]
    cmd += ["-l", str(size), "-f", SENDER, "-t", recipient, "-M", HELO]
    if scenario.reuse:
        cmd.append("-d")
    return [*cmd, f"{HOST}:{port}"]


async def run_smtp_source(
    tool: SmtpSource,
    target: Target,
    scenario: Scenario,
    size: int,
    timeout_s: float,
    recipient: str = RECIPIENT,
) -> Run:
    pids = target.pids()
    stack = target.stack_pids()
    before = {pid: _cpu_ticks(pid) for pid in [*pids, *stack.values()]}
    client_before = _children_cpu_s()
    machine_before = machine_busy_ticks()
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *smtp_source_command(tool, scenario, size, target.port, recipient),
        env=tool.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    wall_s = time.perf_counter() - began
    used = {pid: _ticks_since(pid, ticks) for pid, ticks in before.items()}
    machine_after = machine_busy_ticks()

    def pct(ticks: int) -> float:
        return round(100 * ticks / CLK_TCK / wall_s, 1)

    exit_code = proc.returncode if proc.returncode is not None else -1
    ok = exit_code == 0
    return Run(
        exit_code=exit_code,
        wall_s=round(wall_s, 3),
        mails_per_s=round(scenario.mails / wall_s, 1) if ok else None,
        cpu_pct=pct(sum(used[pid] for pid in pids)) if pids else None,
        client_cpu_pct=round(100 * (_children_cpu_s() - client_before) / wall_s, 1),
        pids=pids,
        stack_cpu_pct={name: pct(used[pid]) for name, pid in stack.items()},
        error="" if ok else output.decode(errors="replace").strip()[-500:],
        machine_cpu_pct=(
            pct(machine_after - machine_before)
            if machine_before is not None and machine_after is not None
            else None
        ),
    )


async def run_with_probe(
    tool: SmtpSource,
    target: Target,
    scenario: Scenario,
    size: int,
    timeout_s: float,
    probe_rate: float,
    probe_max: int,
) -> tuple[Run, LatencySample]:
    """The smtp-source run, with the latency probe at ``probe_rate`` mails/s beside it."""
    stop = asyncio.Event()
    probe = asyncio.create_task(
        measure_250_latency(
            HOST,
            target.port,
            probe_max,
            size=size,
            sender=SENDER,
            recipient=RECIPIENT,
            interval_s=1 / probe_rate,
            stop=stop,
        )
    )
    try:
        run = await run_smtp_source(tool, target, scenario, size, timeout_s)
    finally:
        stop.set()
    return run, await probe


# --- the processes under test ------------------------------------------------------------


def stack_env(args: argparse.Namespace) -> dict[str, str]:
    """This environment without the developer's TMPMAIL_*, plus the bench stack's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TMPMAIL_")}
    env.update(
        {
            "TMPMAIL_STATE_DIR": str(STATE_DIR),
            "TMPMAIL_SMTP_PORT": str(args.smtp_port),
            "TMPMAIL_HTTP_PORT": str(args.http_port),
            "TMPMAIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{args.kafka_port}",
            "TMPMAIL_KAFKA_CONTROLLER_PORT": str(args.controller_port),
            "TMPMAIL_SMTP_MAX_CONNECTIONS_PER_CLIENT": "10000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if args.ingest_processes is not None:
        env["TMPMAIL_INGEST_PROCESSES"] = str(args.ingest_processes)
    return env


def tmpmail(
    *cli_args: str, env: dict[str, str], timeout_s: float, echo: bool = True
) -> tuple[int, str]:
    """``python -m deploy.cli <cli_args>``, its lines echoed as progress; (exit, output)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", *cli_args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in proc.stdout:
            lines.append(line)
            if echo:
                progress(f"  tmpmail {cli_args[0]}: {line.rstrip()}")
            if time.monotonic() > deadline:
                proc.kill()
                lines.append(f"(killed after {timeout_s:.0f}s)\n")
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return code, "".join(lines)


def up_args(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    """``up --detach``, with ``--ingest N`` when this launcher has that option."""
    cli = ["up", "--detach"]
    if args.ingest_processes is not None:
        _, help_text = tmpmail("up", "--help", env=env, timeout_s=60, echo=False)
        if "--ingest" in help_text:
            cli += ["--ingest", str(args.ingest_processes)]
    return cli


def start_stack(args: argparse.Namespace, env: dict[str, str]) -> None:
    if any((STATE_DIR / "run").glob("*.pid")):
        progress(f"stopping what an earlier bench left running in {STATE_DIR}")
        tmpmail("down", env=env, timeout_s=DOWN_TIMEOUT_S)
    cli = up_args(args, env)
    progress(f"starting the stack: python -m deploy.cli {' '.join(cli)} (state {STATE_DIR})")
    code, _ = tmpmail(*cli, env=env, timeout_s=UP_TIMEOUT_S)
    if code != 0:
        logs = STATE_DIR / "logs"
        raise BenchError(
            f"`tmpmail up` failed (exit {code}); see its output above and {logs}.\n"
            "To bench the reference sink alone: python -m bench.ingest --sink-only"
        )


def stop_stack(env: dict[str, str]) -> None:
    progress("stopping the stack: python -m deploy.cli down")
    code, _ = tmpmail("down", env=env, timeout_s=DOWN_TIMEOUT_S)
    if code != 0:
        progress(f"  `tmpmail down` exited {code}")


def start_sink(port: int) -> subprocess.Popen[bytes]:
    if not port_is_free(port):
        raise BenchError(f"the sink's port {port} is taken: choose another with --sink-port")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sink", "--host", HOST, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + SINK_READY_TIMEOUT_S
    while not port_accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
            raise BenchError(f"the sink did not start on {port}:\n{output}")
        time.sleep(0.05)
    progress(f"sink (stock aiosmtpd on uvloop) listening on {HOST}:{port}, pid {proc.pid}")
    return proc


def stop_sink(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class BenchError(RuntimeError):
    """The bench cannot run as asked; the message says why."""


# --- the run ---------------------------------------------------------------------------


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    found = []
    for connections in args.connections:
        mails = args.mails_single if connections == 1 else args.mails
        for reuse in (False, True):
            found.append(Scenario(connections, reuse, mails))
    return found


async def warm_up(tool: SmtpSource, target: Target, args: argparse.Namespace) -> None:
    """``--warm-up-mails`` uncounted mails to ``target`` on 20 reused connections, before
    anything is measured (see docs/performance.md, "The broker's JIT")."""
    warm = Scenario(20, True, args.warm_up_mails)
    progress(
        f"{target.name}: warm-up, {warm.mails} mails on {warm.connections} connections, "
        f"processes {target.pids()}"
    )
    run = await run_smtp_source(tool, target, warm, args.size, args.run_timeout)
    if run.exit_code != 0:
        raise BenchError(f"{target.name} refused the warm-up mails:\n{run.error}")


async def bench(tool: SmtpSource, targets: list[Target], args: argparse.Namespace) -> dict:
    plan = scenarios(args)
    runs: dict[tuple[str, str], list[Run]] = {}
    under_load = {target.name: LatencySample() for target in targets}
    latency: dict[str, dict] = {target.name: {} for target in targets}
    for target in targets:
        await warm_up(tool, target, args)
    for round_no in range(1, args.rounds + 1):
        for scenario in plan:
            for target in targets:
                label = f"{target.name:<6} {scenario.name}"
                if args.rounds > 1:
                    label += f" (round {round_no}/{args.rounds})"
                progress(f"{label}: {scenario.mails} mails ...")
                probed = (scenario.connections, scenario.reuse) == PROBE_SCENARIO
                if probed:
                    run, sample = await run_with_probe(
                        tool,
                        target,
                        scenario,
                        args.size,
                        args.run_timeout,
                        args.probe_rate,
                        args.latency_mails,
                    )
                    under_load[target.name].extend(sample)
                else:
                    run = await run_smtp_source(tool, target, scenario, args.size, args.run_timeout)
                runs.setdefault((target.name, scenario.name), []).append(run)
                progress(f"{label}: {_describe(run)}")
                if probed:
                    progress(f"{target.name:<6}   250 latency under load: {_latency_cell(sample)}")
                await asyncio.sleep(args.pause)
    for target in targets:
        if (target.name, _probe_name()) in runs:
            latency[target.name]["under_load"] = under_load[target.name].summary()
        progress(f"{target.name}: 250 latency, {args.latency_mails} mails on one connection")
        sample = await measure_250_latency(
            HOST,
            target.port,
            args.latency_mails,
            size=args.size,
            sender=SENDER,
            recipient=RECIPIENT,
        )
        latency[target.name]["idle"] = sample.summary()
        progress(f"{target.name}: {_latency_cell(sample)}")
        if sample.failures:
            progress(f"{target.name}:   first failure: {sample.failures[0]}")
    rows = []
    for s in plan:
        row: dict = {
            "name": s.name,
            "connections": s.connections,
            "reuse": s.reuse,
            "mails": s.mails,
        }
        for t in targets:
            row[t.name] = _combine(runs[(t.name, s.name)])
        row["ratio_ingest_sink"] = _ratio(row)
        rows.append(row)
    return {"scenarios": rows, "latency": latency}


def _probe_name() -> str:
    return Scenario(PROBE_SCENARIO[0], PROBE_SCENARIO[1], 0).name


def _combine(runs: list[Run]) -> dict:
    """The runs of one target and scenario, and their medians (None if any run failed)."""
    ok = all(run.exit_code == 0 for run in runs)

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 1) if ok and present else None

    return {
        "mails_per_s": median([run.mails_per_s for run in runs]),
        "cpu_pct": median([run.cpu_pct for run in runs]),
        "stack_cpu_pct": median(
            [sum(run.stack_cpu_pct.values()) for run in runs if run.stack_cpu_pct]
        ),
        "runs": [asdict(run) for run in runs],
    }


def _describe(run: Run) -> str:
    if run.exit_code != 0:
        return f"FAILED (smtp-source exit {run.exit_code} after {run.wall_s:.1f}s): {run.error}"
    cpu = "?" if run.cpu_pct is None else f"{run.cpu_pct:.0f}%"
    stack = "".join(f", {name} {pct:.0f}%" for name, pct in run.stack_cpu_pct.items())
    return (
        f"{run.mails_per_s:.0f} mails/s in {run.wall_s:.2f}s, server CPU {cpu}, "
        f"smtp-source CPU {run.client_cpu_pct:.0f}%{stack}"
    )


def _latency_cell(sample: LatencySample) -> str:
    return _format_latency(sample.summary())


def _format_latency(summary: dict) -> str:
    if not summary or summary.get("p50_ms") is None:
        return "-"
    text = f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f} (n={summary['count']})"
    if summary.get("failures"):
        text += f" {summary['failures']} failed"
    return text


def _ratio(row: dict) -> float | None:
    ingest, sink = row.get("ingest"), row.get("sink")
    if ingest is None or sink is None or not ingest["mails_per_s"] or not sink["mails_per_s"]:
        return None
    return round(ingest["mails_per_s"] / sink["mails_per_s"], 2)


def table(report: dict, targets: list[str], args: argparse.Namespace) -> str:
    """The results as one plain-text table."""
    header = ["scenario", "mails"]
    for name in targets:
        header += [f"{name}/s"]
    pair = "ingest" in targets and "sink" in targets
    if pair:
        header.append("ingest/sink")
    header += [f"{name} CPU" for name in targets]
    with_stack = "ingest" in targets and any(
        scenario["ingest"]["stack_cpu_pct"] is not None for scenario in report["scenarios"]
    )
    if with_stack:
        header.append("stack CPU")
    rows = [header]
    for scenario in report["scenarios"]:
        row = [scenario["name"], str(scenario["mails"])]
        for name in targets:
            rate = scenario[name]["mails_per_s"]
            row.append("FAIL" if rate is None else f"{rate:.0f}")
        if pair:
            ratio = scenario["ratio_ingest_sink"]
            row.append("-" if ratio is None else f"{ratio:.2f}")
        for name in targets:
            cpu = scenario[name]["cpu_pct"]
            row.append("?" if cpu is None else f"{cpu:.0f}%")
        if with_stack:
            stack = scenario["ingest"]["stack_cpu_pct"]
            row.append("?" if stack is None else f"{stack:.0f}%")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    probe = f"{PROBE_SCENARIO[0]} conns, {'reused (-d)' if PROBE_SCENARIO[1] else 'new'}"
    latency_rows = [
        (
            f"250 latency p50 / p99 ms, under load: 1 extra connection at "
            f"{args.probe_rate:g} mails/s beside '{probe}'",
            "under_load",
        ),
        (
            f"250 latency p50 / p99 ms, idle: {args.latency_mails} mails back to back "
            "on 1 connection after the load",
            "idle",
        ),
    ]
    lines.append("")
    for title, key in latency_rows:
        lines.append(title)
        for name in targets:
            lines.append(f"    {name:<7} {_format_latency(report['latency'][name].get(key, {}))}")
    return "\n".join(lines)


def git_state() -> dict[str, object]:
    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--no-stack",
        action="store_true",
        help="bench an ingest already listening on --smtp-port instead of starting the stack",
    )
    where.add_argument("--sink-only", action="store_true", help="bench the reference sink only")
    parser.add_argument("--smtp-port", type=int, default=22525, help="ingest's SMTP port")
    parser.add_argument("--http-port", type=int, default=28000)
    parser.add_argument("--kafka-port", type=int, default=29192)
    parser.add_argument("--controller-port", type=int, default=29193)
    parser.add_argument("--sink-port", type=int, default=22526)
    parser.add_argument(
        "--mailpit", action="store_true", help="bench Mailpit too (bench.mailpit builds it once)"
    )
    parser.add_argument("--mailpit-smtp-port", type=int, default=22527)
    parser.add_argument("--mailpit-http-port", type=int, default=28002)
    parser.add_argument(
        "--ingest-processes",
        type=int,
        metavar="N",
        help="ingest processes sharing the port (TMPMAIL_INGEST_PROCESSES, `up --ingest`)",
    )
    parser.add_argument("--mails", type=int, default=5000, help="mails per scenario")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of every scenario; the table shows medians"
    )
    parser.add_argument(
        "--mails-single", type=int, help="mails per 1-connection scenario (default: mails/4)"
    )
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 20, 50],
        help="connection counts, comma-separated (default: 1,20,50)",
    )
    parser.add_argument("--size", type=int, default=5120, help="mail size in bytes")
    parser.add_argument("--latency-mails", type=int, default=200, help="idle latency sample")
    parser.add_argument(
        "--probe-rate", type=float, default=50.0, help="latency probe mails/s under load"
    )
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds to wait after starting the stack"
    )
    parser.add_argument(
        "--warm-up-mails",
        type=int,
        default=20_000,
        help="mails sent to each target before the runs, not counted: the broker's JIT "
        "needs about this many (2,000 left Kafka at 2.5 ms of CPU a mail on one connection, "
        "20,000 at 0.4 ms)",
    )
    parser.add_argument(
        "--run-timeout", type=float, default=300.0, help="seconds one smtp-source run may take"
    )
    args = parser.parse_args(argv)
    if args.mails_single is None:
        args.mails_single = max(1, args.mails // 4)
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the stack too
    load_before = os.getloadavg()
    progress(f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} (1 min) before the run")
    tool = smtp_source()
    progress(f"smtp-source: {tool.path}")
    env = stack_env(args)
    stack_started = False
    sink: subprocess.Popen[bytes] | None = None
    mailpit: Mailpit | None = None
    try:
        targets = []
        if not args.sink_only:
            if not args.no_stack:
                stack_started = True
                start_stack(args, env)
                progress(f"letting the new stack settle for {args.settle:g}s (JVM start-up)")
                time.sleep(args.settle)
            elif not port_accepts(args.smtp_port):
                raise BenchError(f"nothing listens on {HOST}:{args.smtp_port} (--no-stack)")
            run_dir = None if args.no_stack else STATE_DIR / "run"
            ingest = Target("ingest", args.smtp_port, run_dir=run_dir)
            progress(f"ingest on {HOST}:{args.smtp_port}, processes {ingest.pids()}")
            targets.append(ingest)
        sink = start_sink(args.sink_port)
        targets.append(Target("sink", args.sink_port, fixed_pids=[sink.pid]))
        if args.mailpit:
            mailpit = Mailpit(
                args.mailpit_smtp_port, args.mailpit_http_port, BENCH_DIR / "mailpit-ingest"
            )
            mailpit.start(mailpit_binary(progress), progress)
            assert mailpit.pid is not None
            targets.append(Target("mailpit", args.mailpit_smtp_port, fixed_pids=[mailpit.pid]))
        report = asyncio.run(bench(tool, targets, args))
    except (BenchError, MailpitError) as exc:
        print(f"bench.ingest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench.ingest: interrupted", file=sys.stderr)
        return 130
    finally:
        if mailpit is not None:
            mailpit.stop()
            mailpit.remove_database()
        if sink is not None:
            stop_sink(sink)
        if stack_started:
            stop_stack(env)
    names = [target.name for target in targets]
    record = {
        "started_at": stamp,
        "git": git_state(),
        "machine": {"cpus": os.cpu_count(), "load_before": load_before},
        "smtp_source": str(tool.path),
        "started_stack": stack_started,
        "targets": {target.name: {"port": target.port} for target in targets},
        "config": vars(args),
        **report,
    }
    print()
    rounds = f", medians of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"smtp-source, {args.size}-byte mails to {RECIPIENT}{rounds}; CPU in % of one core "
        "over each run (stack CPU: the stack's kafka, streams and api beside ingest)"
    )
    print(table(report, names, args))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"ingest-{stamp}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
