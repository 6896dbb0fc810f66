"""``make bench``: tmpmail beside its references, scenario by scenario, in one table.

    make bench                                   # the full run: about 12 minutes, quiet
    make bench BENCH_ARGS=--quick                # a short pass that checks the harness
    .venv/bin/python -m bench.run [--quick] [--only ingest,e2e,...] [--port-offset N]

The references come with it: Postfix's ``smtp-source`` (:mod:`bench.refs`, unpacked from
the Debian package), Mailpit v1.27.11 (:mod:`bench.mailpit`, built once with Go into
``.tmpmail-tools/``) and the stock aiosmtpd sink (:mod:`bench.sink`). tmpmail runs on the
default SQLite store, started by the project's launcher on ports of its own. Scenarios
(``--only`` takes their names):

``ingest``   ingest alone at 1, 20 and 50 connections, a connection per mail and reused:
             250s/s with acks=all, beside the sink and Mailpit (:func:`bench.ingest.bench`);
``e2e``      end to end, sustained (:mod:`bench.e2e`): one smtp-source load to existing
             mailboxes, counted acked, stored and received by a live SSE client, then the
             same load into Mailpit; the e2e rate over Mailpit's storing rate (three
             rounds, alternating; the median's round reported);
``live``     SMTP 250 to SSE event at a steady 200 mails/s (:func:`bench.live.steady`);
``growth``   list and get through the HTTP API with 1k, 10k and 100k messages stored
             (:mod:`bench.store_http`), on a stack of its own;
``parse``    ``mail.parse`` on one core (:func:`bench.parse.measure`), first, on an idle
             machine as far as this bench goes;
``replay``   ``tmpmail replay --from-beginning`` (:func:`bench.replay.measure`), on a stack
             of its own so that the topic holds only its mail;
``fanout``   ``bench/fanout.py`` as a subprocess, its JSON collected, if it exists;
``mongodb``  a short end-to-end pass on MongoDB through FerretDB, to show it works
             (FerretDB scans whole collections: it is no performance reference).

The CPU of every process (ingest, streams, api, kafka, the load generator, Mailpit, the
sink, and the rest of the machine) is measured over each window (:mod:`bench.cpu`).
It prints progress, then ONE table with each figure, its reference, the ratio, the target
and pass/fail, and writes ``bench.json``, ``table.txt`` and PNG plots to
``.tmpmail-bench/results/<timestamp>/`` (:mod:`bench.report`). Stacks, sink and Mailpit
are stopped at the end, on errors and on Ctrl-C (or ``kill``) too. Exit status: 0 when
every scenario ran (a missed target is a result, not a failure), 1 when one could not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as bench/run.py: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest, live, parse, replay, report, store_http
from bench.cpu import CpuMeter, MissingExtra
from bench.e2e import Load, mailpit_e2e, median_round, round_ratio, round_summary, tmpmail_e2e
from bench.ingest import Target, port_is_free, start_sink, stop_sink
from bench.mailpit import Mailpit, mailpit_binary
from bench.refs import SmtpSource, smtp_source
from bench.stack import (
    BENCH_DIR,
    REPO,
    RESULTS_DIR,
    BenchError,
    BenchStack,
    Ports,
    create_mailbox,
    git_state,
    machine,
    progress,
    sigterm_as_interrupt,
    stamp,
)
from deploy.launcher import role_of
from schemas.runtime import loop_factory

SCENARIOS = ("parse", "ingest", "e2e", "live", "growth", "replay", "fanout", "mongodb")
STATE_ROOT = BENCH_DIR / "make-bench"
FANOUT_SCRIPT = REPO / "bench" / "fanout.py"
FANOUT_TIMEOUT_S = 1200.0
SETTLE_S = 3.0


# --- what a run does -------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    ingest_mails: int
    ingest_warm_up: int
    ingest_latency_mails: int
    e2e: Load
    #: Rounds of the e2e pair (tmpmail, then Mailpit), alternating; the median is judged.
    e2e_rounds: int
    live_rate: float
    live_duration_s: float
    live_warm_up_s: float
    growth_sizes: tuple[int, ...]
    growth_queries: int
    parse_seconds: float
    parse_rounds: int
    parse_mails: int
    parse_references: bool
    replay_mails: int
    replay_runs: int
    mongodb: Load


FULL = Counts(
    ingest_mails=5000,
    ingest_warm_up=20_000,
    ingest_latency_mails=200,
    e2e=Load(mails=10_000, connections=20, mailboxes=4),
    e2e_rounds=3,
    live_rate=200.0,
    live_duration_s=15.0,
    live_warm_up_s=3.0,
    growth_sizes=(1_000, 10_000, 100_000),
    growth_queries=300,
    parse_seconds=2.0,
    parse_rounds=3,
    parse_mails=2000,
    parse_references=True,
    replay_mails=20_000,
    replay_runs=2,
    mongodb=Load(mails=200, connections=4, mailboxes=1),
)

QUICK = Counts(
    ingest_mails=400,
    ingest_warm_up=200,
    ingest_latency_mails=50,
    e2e=Load(mails=800, connections=8, mailboxes=2),
    e2e_rounds=1,
    live_rate=200.0,
    live_duration_s=3.0,
    live_warm_up_s=1.0,
    growth_sizes=(1_000, 2_000, 5_000),
    growth_queries=60,
    parse_seconds=0.3,
    parse_rounds=1,
    parse_mails=300,
    parse_references=False,
    replay_mails=1_000,
    replay_runs=1,
    mongodb=Load(mails=40, connections=2, mailboxes=1),
)


@dataclass(frozen=True)
class BenchPorts:
    """Every port of the run; the stacks run one after the other on the same ones."""

    smtp: int = 21525
    http: int = 28900
    kafka: int = 29892
    controller: int = 29893
    sink: int = 21526
    mailpit_smtp: int = 21527
    mailpit_http: int = 28901
    mongo: int = 27925

    def shifted(self, offset: int) -> BenchPorts:
        return BenchPorts(**{name: port + offset for name, port in asdict(self).items()})

    def stack(self) -> Ports:
        return Ports(self.smtp, self.http, self.kafka, self.controller)

    def taken(self) -> list[str]:
        return [f"{name} {port}" for name, port in asdict(self).items() if not port_is_free(port)]


# --- the run ---------------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        counts: Counts,
        ports: BenchPorts,
        only: list[str],
        quick: bool,
        streams: int | None = None,
    ) -> None:
        self.counts = counts
        self.ports = ports
        self.only = only
        self.quick = quick
        self.streams = streams
        self.meter = CpuMeter()
        self.started_at = stamp()
        self.out_dir = RESULTS_DIR / self.started_at
        self.record: dict[str, Any] = {
            "bench": "make bench",
            "started_at": self.started_at,
            "git": git_state(),
            "machine": machine(),
            "quick": quick,
            "only": only,
            "counts": _jsonable(asdict(counts)),
            "ports": asdict(ports),
            "streams_processes": streams,
            "scenarios": {},
        }
        self._tool: SmtpSource | None = None
        self._mailpit_binary: Path | None = None

    # --- references, provisioned on first use ---

    @property
    def tool(self) -> SmtpSource:
        if self._tool is None:
            self._tool = smtp_source()
            progress(f"smtp-source: {self._tool.path}")
        return self._tool

    @property
    def mailpit_binary(self) -> Path:
        if self._mailpit_binary is None:
            self._mailpit_binary = mailpit_binary(progress)
        return self._mailpit_binary

    # --- scaffolding ---

    def scenario(self, name: str, measure: Callable[[], dict[str, Any]]) -> None:
        """Run one scenario; an exception is recorded as its error, and the run goes on."""
        progress(f"=== {report.SCENARIO_LABELS[name]} ===")
        began = time.monotonic()
        try:
            section = measure()
        except Exception as exc:  # the run goes on; the table and JSON say what failed
            section = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc().splitlines()[-12:],
            }
            progress(f"{name}: FAILED: {type(exc).__name__}: {exc}")
        section["took_s"] = round(time.monotonic() - began, 1)
        self.record["scenarios"][name] = section

    def fail_all(self, names: list[str], message: str, **extra: Any) -> None:
        for name in names:
            self.record["scenarios"][name] = {"error": message, **extra}

    @contextmanager
    def stack(self, name: str, names: list[str], **extra_env: str) -> Iterator[BenchStack | None]:
        """A fresh stack in ``.tmpmail-bench/make-bench/<name>``, its processes metered;
        down and its data removed after (its logs stay). None if it did not start (then
        every scenario in ``names`` has that error)."""
        env = {"TMPMAIL_SSE_QUEUE_SIZE": "10000", **extra_env}
        if self.streams is not None:
            env["TMPMAIL_STREAMS_PROCESSES"] = str(self.streams)
        stack = BenchStack(STATE_ROOT / name, self.ports.stack(), extra_env=env)
        try:
            stack.wipe_data()
            stack.up()
        except BenchError as exc:
            progress(f"the {name} stack did not start: {exc}")
            self.fail_all(names, f"the {name} stack did not start: {exc}", logs=stack.log_tails())
            stack.down()
            yield None
            return
        except BaseException:  # Ctrl-C while it starts: what did start goes down
            stack.down()
            raise
        try:
            progress(f"letting the new stack settle for {SETTLE_S:g}s")
            time.sleep(SETTLE_S)
            for role, pids in stack_roles(stack).items():
                self.meter.add(role, pids)
            yield stack
        finally:
            for role in stack_roles(stack):
                self.meter.remove(role)
            stack.down()
            stack.wipe_data()

    # --- the scenarios ---

    def run(self) -> None:
        if "parse" in self.only:
            self.scenario("parse", self.parse)
        main: list[str] = [n for n in ("ingest", "e2e", "live") if n in self.only]
        if main:
            self.main_stack(main)
        if "growth" in self.only:
            with self.stack("growth", ["growth"]) as stack:
                if stack is not None:
                    self.scenario("growth", lambda: self.growth(stack))
        if "replay" in self.only:
            with self.stack("replay", ["replay"]) as stack:
                if stack is not None:
                    self.scenario("replay", lambda: self.replay(stack))
        if "fanout" in self.only:
            self.scenario("fanout", self.fanout)
        if "mongodb" in self.only:
            mongo = {
                "TMPMAIL_STORE": "mongodb",
                "TMPMAIL_MONGO_URL": f"mongodb://127.0.0.1:{self.ports.mongo}/",
            }
            with self.stack("mongodb", ["mongodb"], **mongo) as stack:
                if stack is not None:
                    self.scenario("mongodb", lambda: self.mongodb(stack))

    def parse(self) -> dict[str, Any]:
        c = self.counts
        names = tuple(parse.PARSERS) if c.parse_references else ("mail.parse",)
        with self.meter.window() as window:
            result = parse.measure(
                c.parse_seconds,
                c.parse_rounds,
                c.parse_mails,
                parsers=names,
                say=lambda line: progress(f"parse: {line}"),
            )
        return {**result, "cpu": window.as_dict()}

    def main_stack(self, names: list[str]) -> None:
        """ingest, e2e and live on one stack, with the sink and Mailpit beside it."""
        try:
            tool = self.tool
            mailpit_binary = self.mailpit_binary if {"ingest", "e2e"} & set(names) else None
        except Exception as exc:
            self.fail_all(names, f"{type(exc).__name__}: {exc}")
            return
        sink: subprocess.Popen[bytes] | None = None
        mailpit: Mailpit | None = None
        with self.stack("main", names) as stack:
            if stack is None:
                return
            try:
                if "ingest" in names:
                    sink = start_sink(self.ports.sink)
                    sink_pid = sink.pid
                    self.meter.add("sink", lambda: [sink_pid])
                if mailpit_binary is not None:
                    mailpit = Mailpit(
                        self.ports.mailpit_smtp, self.ports.mailpit_http, STATE_ROOT / "mailpit"
                    )
                    mailpit.start(mailpit_binary, progress)
                    started = mailpit
                    self.meter.add("mailpit", lambda: [started.pid] if started.pid else [])
            except Exception as exc:
                self.fail_all(names, f"the references did not start: {exc}")
                names = []
            try:
                with asyncio.Runner(loop_factory=loop_factory()) as runner:
                    if "ingest" in names:
                        assert sink is not None and mailpit is not None
                        ours, theirs = sink, mailpit
                        self.scenario(
                            "ingest", lambda: runner.run(self.ingest(tool, stack, ours, theirs))
                        )
                    if "ingest" not in names and {"e2e", "live"} & set(names):
                        runner.run(self.warm_up(tool, stack))
                    if "e2e" in names:
                        assert mailpit is not None
                        theirs = mailpit
                        self.scenario("e2e", lambda: runner.run(self.e2e(tool, stack, theirs)))
                    if "live" in names:
                        self.scenario("live", lambda: runner.run(self.live(stack)))
            finally:
                if mailpit is not None:
                    mailpit.stop()
                    mailpit.remove_database()
                if sink is not None:
                    stop_sink(sink)
                self.meter.remove("sink")
                self.meter.remove("mailpit")

    async def ingest(
        self,
        tool: SmtpSource,
        stack: BenchStack,
        sink: subprocess.Popen[bytes],
        mailpit: Mailpit,
    ) -> dict[str, Any]:
        c = self.counts
        args = ingest.parse_args(
            [
                "--mails",
                str(c.ingest_mails),
                "--warm-up-mails",
                str(c.ingest_warm_up),
                "--latency-mails",
                str(c.ingest_latency_mails),
                "--pause",
                "0.5",
            ]
        )
        assert mailpit.pid is not None
        targets = [
            Target("ingest", stack.ports.smtp, run_dir=stack.state_dir / "run"),
            Target("sink", self.ports.sink, fixed_pids=[sink.pid]),
            Target("mailpit", self.ports.mailpit_smtp, fixed_pids=[mailpit.pid]),
        ]
        result = await ingest.bench(tool, targets, args)
        config = {k: v for k, v in vars(args).items() if not k.endswith("_port")}
        return {**result, "config": config}

    async def warm_up(self, tool: SmtpSource, stack: BenchStack) -> None:
        """The ingest scenario's warm-up when it does not run: a broker in service is warm
        (its JIT has compiled its hot paths; see docs/performance.md, "The broker's JIT"),
        and a cold one took a third of a core more in the e2e scenario."""
        args = ingest.parse_args(["--warm-up-mails", str(self.counts.ingest_warm_up)])
        target = Target("ingest", stack.ports.smtp, run_dir=stack.state_dir / "run")
        try:
            await ingest.warm_up(tool, target, args)
        except BenchError as exc:  # the scenarios after it fail with their own errors
            progress(f"warm-up: {exc}")

    async def e2e(self, tool: SmtpSource, stack: BenchStack, mailpit: Mailpit) -> dict[str, Any]:
        """The e2e pair ``e2e_rounds`` times, tmpmail then Mailpit each time, so that both
        see the VM's drift alike; the round of the median ratio is the one reported."""
        load, rounds = self.counts.e2e, self.counts.e2e_rounds
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for n in range(1, rounds + 1):
            label = "e2e tmpmail" if rounds == 1 else f"e2e tmpmail (round {n}/{rounds})"
            ours = await tmpmail_e2e(tool, stack, load, self.meter, label=label)
            await asyncio.sleep(1.0)
            theirs = await mailpit_e2e(
                tool,
                mailpit,
                ours["recipients"],
                load,
                self.meter,
                label=label.replace("tmpmail", "Mailpit"),
            )
            pairs.append((ours, theirs))
            await asyncio.sleep(1.0)
        chosen = median_round(pairs)
        ours, theirs = pairs[chosen]
        versus = round_ratio(ours, theirs)
        return {
            "tmpmail": ours,
            "mailpit": theirs,
            "ratio_e2e_to_mailpit_stored": None if versus is None else round(versus, 3),
            "rounds": [round_summary(o, t) for o, t in pairs],
            "median_round": chosen,
        }

    async def live(self, stack: BenchStack) -> dict[str, Any]:
        c = self.counts
        args = live.parse_args(
            [
                "--smtp-port",
                str(stack.ports.smtp),
                "--rate",
                f"{c.live_rate:g}",
                "--duration",
                f"{c.live_duration_s:g}",
                "--warm-up",
                f"{c.live_warm_up_s:g}",
            ]
        )
        run = secrets.token_hex(3)
        async with stack.client() as client:
            mailbox = await create_mailbox(client)
            events, listener = await live.listen(client, mailbox)
            try:
                if args.warm_up > 0:
                    progress(f"live: warm-up, {args.rate:g} mails/s for {args.warm_up:g}s")
                    warm = live.StorePoller(client, mailbox, args.poll)
                    await live.steady(args, mailbox, events, warm, run, "warm-up", args.warm_up)
                progress(
                    f"live: {args.rate:g} mails/s for {args.duration:g}s on "
                    f"{args.latency_connections} connections"
                )
                poller = live.StorePoller(client, mailbox, args.poll)
                with self.meter.window() as window:
                    mails = await live.steady(
                        args, mailbox, events, poller, run, "latency", args.duration
                    )
            finally:
                listener.cancel()
        result = live.latency_report(mails, events, poller, args)
        d = result["sse_minus_250_ms"]
        progress(f"live: SSE - 250 p50 {d['p50']} ms, p99 {d['p99']} ms, max {d['max']} ms")
        return {**result, "cpu": window.as_dict(), "live_stream_reopened": events.reopened}

    def growth(self, stack: BenchStack) -> dict[str, Any]:
        c = self.counts
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(
                store_http.measure(stack, c.growth_sizes, c.growth_queries, meter=self.meter)
            )

    def replay(self, stack: BenchStack) -> dict[str, Any]:
        c = self.counts
        args = replay.parse_args(
            [
                *("--mails", str(c.replay_mails), "--runs", str(c.replay_runs)),
                *("--state-dir", str(stack.state_dir)),
            ]
        )
        snapshot = stack.state_dir / "empty" / "mailboxes.sqlite3"
        try:
            result = replay.measure(args, stack, snapshot, self.meter)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{snapshot}{suffix}").unlink(missing_ok=True)
        return {**result, "mails": c.replay_mails}

    def fanout(self) -> dict[str, Any]:
        with self.meter.window() as window:
            result = run_fanout(self.quick, self.ports)
        if result.get("status") != report.NOT_RUN:
            result["cpu"] = window.as_dict()
        return result

    def mongodb(self, stack: BenchStack) -> dict[str, Any]:
        tool = self.tool
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(
                tmpmail_e2e(
                    tool,
                    stack,
                    self.counts.mongodb,
                    self.meter,
                    poll_s=0.2,
                    grace_s=30,
                    label="mongodb",
                )
            )


def stack_roles(stack: BenchStack) -> dict[str, Callable[[], list[int]]]:
    """The stack's processes by role: ingest (every ingest process), and each role the
    launcher's pid files name (kafka, streams: every worker, api, ferretdb)."""
    target = Target("ingest", stack.ports.smtp, run_dir=stack.state_dir / "run")

    def service(role: str) -> Callable[[], list[int]]:
        def pids() -> list[int]:
            return [pid for name, pid in target.stack_pids().items() if role_of(name) == role]

        return pids

    roles: dict[str, Callable[[], list[int]]] = {"ingest": target.pids}
    for name in ("kafka", "streams", "api", "ferretdb"):
        roles[name] = service(name)
    return roles


# --- the fan-out bench, another engineer's script ---------------------------------------------


def fanout_options(help_text: str, quick: bool, ports: BenchPorts) -> list[str]:
    """The options ``bench.fanout`` is given, of those its ``--help`` lists: this run's
    ports and a state folder of its own (its stack runs while ours are down), and its
    client counts: the target's 10,000 alone, or a few hundred with ``quick``; and
    ``--keep-data``, so that its mailboxes are created once, not on every run."""
    options: list[str] = []

    def offer(flag: str, *values: str) -> None:
        if _has_option(help_text, flag):
            options.extend([flag, *values])

    for flag, port in (
        ("--smtp-port", ports.smtp),
        ("--http-port", ports.http),
        ("--kafka-port", ports.kafka),
        ("--controller-port", ports.controller),
    ):
        offer(flag, str(port))
    offer("--state-dir", str(STATE_ROOT / "fanout"))
    offer("--keep-data")  # its 10,000 mailboxes, made once, kept for the next run
    if quick and _has_option(help_text, "--quick"):
        options.append("--quick")
    elif quick:
        offer("--clients", "300")
        offer("--rounds", "1")
        offer("--warm-up-clients", "10")
    else:
        offer("--clients", str(report.FANOUT_CLIENTS))
    return options


def _has_option(help_text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


def run_fanout(quick: bool, ports: BenchPorts) -> dict[str, Any]:
    """``python -m bench.fanout`` (options: :func:`fanout_options`), its output as
    progress, and its JSON: the path it prints as ``results: <path>``, else the newest
    ``fanout-*.json`` in the results folder written since it started."""
    if not FANOUT_SCRIPT.exists():
        return {"status": report.NOT_RUN, "reason": "bench/fanout.py does not exist yet"}
    command = [sys.executable, "-m", "bench.fanout"]
    try:
        help_text = subprocess.run(
            [*command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
        ).stdout
    except subprocess.TimeoutExpired:
        help_text = ""
    command += fanout_options(help_text, quick, ports)
    progress(f"fanout: {' '.join(command[1:])}")
    began = time.time()
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
            progress(f"  fanout: {line.rstrip()}")
            if time.time() - began > FANOUT_TIMEOUT_S:
                proc.terminate()
                raise BenchError(f"bench/fanout.py still ran after {FANOUT_TIMEOUT_S:g}s")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    path = fanout_results_path(lines, began)
    data: Any = None
    if path is not None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BenchError(f"bench/fanout.py's results {path} are not JSON: {exc}") from exc
    return {
        "status": "ran",
        "command": command[1:],
        "exit_code": code,
        "json_path": None if path is None else str(path),
        "figures": report.fanout_figures(data),
        "data": data,
        "tail": lines[-20:],
    }


def fanout_results_path(lines: list[str], since: float) -> Path | None:
    for line in reversed(lines):
        found = re.search(r"results:\s*(\S+\.json)\b", line)
        if found and Path(found.group(1)).exists():
            return Path(found.group(1))
    newest = [p for p in RESULTS_DIR.glob("fanout*.json") if p.stat().st_mtime >= since - 1]
    return max(newest, key=lambda p: p.stat().st_mtime) if newest else None


# --- the command line ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: check the harness")
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(SCENARIOS),
        help=f"scenarios, comma-separated (default: all of {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--streams",
        type=int,
        metavar="N",
        help="streams workers of every stack (TMPMAIL_STREAMS_PROCESSES; default: its default)",
    )
    parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="add this to every port of the run (default ports: "
        + ", ".join(f"{name} {port}" for name, port in asdict(BenchPorts()).items())
        + ")",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.only if name not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = QUICK if args.quick else FULL
    ports = BenchPorts().shifted(args.port_offset)
    only = [name for name in SCENARIOS if name in args.only]
    try:
        bench = Bench(counts, ports, only, args.quick, args.streams)
    except MissingExtra as exc:
        print(f"bench.run: {exc}", file=sys.stderr)
        return 1
    info = bench.record["machine"]
    progress(
        f"make bench{' --quick' if args.quick else ''}: {', '.join(only)}; {info['cpus']} CPUs, "
        f"load average {info['load_before'][0]:.2f} before the run"
    )
    if info["load_before"][0] > (info["cpus"] or 1):
        progress("  the machine is busy: other work will take CPU from every figure (see 'other')")
    code = 0
    with sigterm_as_interrupt():
        try:
            stop_leftovers()
            taken = ports.taken()
            if taken:
                raise BenchError(
                    f"port(s) taken: {', '.join(taken)}. Another bench or test stack uses them: "
                    "stop it, or move this run with --port-offset N (e.g. 1000)."
                )
            bench.run()
        except BenchError as exc:
            print(f"bench.run: {exc}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            print("bench.run: interrupted; reporting what ran", file=sys.stderr)
            code = 130
    bench.record["machine"]["load_after"] = os.getloadavg()
    bench.record["finished_at"] = stamp()
    found = report.rows(bench.record)
    text = report.table(found)
    header = (
        f"make bench{' --quick (small counts: not figures to quote)' if args.quick else ''}, "
        f"{bench.started_at}, commit {str(bench.record['git']['commit'])[:10]}"
        f"{' (dirty)' if bench.record['git']['dirty'] else ''}; load average "
        f"{info['load_before'][0]:.2f} before, {bench.record['machine']['load_after'][0]:.2f} after"
        "\nCPU columns: % of one core over each measured window (2 cores: 200%); load = the "
        "bench process and what it ran; other = the rest of the machine"
    )
    errors = [
        "  " + _first_lines(f"{name}: {section['error']}", 6)
        for name, section in bench.record["scenarios"].items()
        if section.get("error")
    ]
    full_text = "\n".join(
        [
            header,
            "",
            text,
            "",
            report.summary_line(found),
            *(["errors:", *errors] if errors else []),
        ]
    )
    written = report.write(bench.record, bench.out_dir, full_text)
    print()
    print(full_text)
    print(f"\nresults: {bench.out_dir} ({', '.join(p.name for p in written)})")
    if errors and code == 0:
        code = 1
    return code


def _first_lines(text: str, count: int) -> str:
    lines = text.splitlines()
    more = (
        f"\n    ... ({len(lines) - count} more lines in bench.json)" if len(lines) > count else ""
    )
    return "\n    ".join(lines[:count]) + more


def stop_leftovers() -> None:
    """Stop any stack an earlier, interrupted run left in the state folders."""
    for state in sorted(STATE_ROOT.glob("*")):
        if any((state / "run").glob("*.pid")):
            progress(f"stopping what an earlier run left running in {state}")
            env = {k: v for k, v in os.environ.items() if not k.startswith("TMPMAIL_")}
            ingest.tmpmail("down", env={**env, "TMPMAIL_STATE_DIR": str(state)}, timeout_s=240)


if __name__ == "__main__":
    sys.exit(main())
