"""The report of ``make bench``: one table, the JSON record, and PNG plots.

:func:`rows` turns the record that :mod:`bench.run` builds (one section per scenario)
into table rows: each figure beside its reference, the ratio, the target and whether it
is met, and the CPU of every process over the window it was measured in. Everything
here but :func:`plots` is pure and tested (``tests/bench/test_report.py``); plots import
matplotlib (the ``bench`` extra) only when called.

CPU is in % of one core (two cores: up to 200% in all). ``load`` is the bench process and
what it ran (smtp-source; the replay process in the replay rows); ``other`` is the rest
of the machine (other people's work on a shared machine). In the ingest rows each
server's CPU is over its own run, and ``load``/``other`` over tmpmail's.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- targets ---------------------------------------------------------------------------------

INGEST_VS_SINK = 1.0
E2E_VS_MAILPIT = 1.0
LIVE_P50_MS = 10.0
LIVE_P99_MS = 50.0
GROWTH_WITHIN = 1.5
PARSE_TYPICAL_PER_S = 5_000.0
PARSE_CORPUS_PER_S = 1_000.0
REPLAY_PER_S = 2_000.0
FANOUT_CLIENTS = 10_000
FANOUT_P99_MS = 500.0

PASS, FAIL, NOT_RUN, ERROR = "pass", "FAIL", "not run", "ERROR"

CPU_COLUMNS = ("ingest", "streams", "api", "kafka", "load", "mailpit", "sink", "other")


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def at_least(value: float | None, bound: float) -> str:
    return "-" if value is None else (PASS if value >= bound else FAIL)


def at_most(value: float | None, bound: float) -> str:
    return "-" if value is None else (PASS if value <= bound else FAIL)


def per_s(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def times(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


# --- rows ------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    measure: str
    tmpmail: str = "-"
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    result: str = ""
    cpu: dict[str, float] = field(default_factory=dict)


def rows(record: dict[str, Any]) -> list[Row]:
    """The table's rows, scenario by scenario, for what the record holds."""
    builders = {
        "ingest": ingest_rows,
        "e2e": e2e_rows,
        "live": live_rows,
        "growth": growth_rows,
        "parse": parse_rows,
        "replay": replay_rows,
        "fanout": fanout_rows,
        "mongodb": mongodb_rows,
    }
    found: list[Row] = []
    scenarios = record.get("scenarios", {})
    for name in [*builders, *(n for n in scenarios if n not in builders)]:
        section = scenarios.get(name)
        if section is None:
            continue
        if name not in builders:
            found.append(Row(name, "unknown scenario (see the JSON)", result="-"))
            continue
        label = SCENARIO_LABELS.get(name, name)
        if section.get("error"):
            found.append(Row(label, "did not complete (see below)", "error", result=ERROR))
        elif section.get("status") == NOT_RUN and name != "fanout":
            found.append(Row(label, section.get("reason", ""), NOT_RUN, result=NOT_RUN))
        else:
            found.extend(builders[name](section))
    return found


SCENARIO_LABELS = {
    "ingest": "1 ingest alone",
    "e2e": "2 end to end",
    "live": "3 live latency",
    "growth": "4 store growth",
    "parse": "5 parse",
    "replay": "5 replay",
    "fanout": "5 fan-out",
    "mongodb": "MongoDB (FerretDB)",
}


def _cpu(window: dict[str, Any] | None) -> dict[str, float]:
    return dict((window or {}).get("cpu_pct", {}))


def ingest_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["ingest"]
    found = []
    for scenario in section["scenarios"]:
        ours, sink, mailpit = (scenario.get(k) for k in ("ingest", "sink", "mailpit"))
        value = ours["mails_per_s"] if ours else None
        sink_rate = sink["mails_per_s"] if sink else None
        mailpit_rate = mailpit["mails_per_s"] if mailpit else None
        versus = ratio(value, sink_rate)
        refs = [f"sink {per_s(sink_rate)}"] if sink else []
        if mailpit:
            refs.append(f"Mailpit {per_s(mailpit_rate)}")
        found.append(
            Row(
                label,
                f"{scenario['name']}: 250s/s",
                per_s(value) if ours else "-",
                ", ".join(refs),
                versus,
                f">= {INGEST_VS_SINK:.1f}x sink",
                at_least(versus, INGEST_VS_SINK),
                ingest_cpu(scenario),
            )
        )
    return found


def ingest_cpu(scenario: dict[str, Any]) -> dict[str, float]:
    """Each process's CPU in one ingest scenario: the medians over its runs of each
    server over its own target's run, and of load and other over tmpmail's."""
    cpu: dict[str, float] = {}
    ours = scenario.get("ingest")
    if ours:
        runs = ours["runs"]
        pairs: list[tuple[str, float | None]] = [
            ("ingest", median(r["cpu_pct"] for r in runs)),
            ("load", median(r["client_cpu_pct"] for r in runs)),
        ]
        for name in sorted({name for r in runs for name in r.get("stack_cpu_pct", {})}):
            pairs.append((name, median(r["stack_cpu_pct"].get(name) for r in runs)))
        others = []
        for r in runs:
            if r.get("machine_cpu_pct") is None:
                continue
            known = (r["cpu_pct"] or 0) + r["client_cpu_pct"] + sum(r["stack_cpu_pct"].values())
            others.append(max(0.0, r["machine_cpu_pct"] - known))
        pairs.append(("other", median(others)))
        cpu.update({name: value for name, value in pairs if value is not None})
    for name in ("sink", "mailpit"):
        target = scenario.get(name)
        if target:
            value = median(r["cpu_pct"] for r in target["runs"])
            if value is not None:
                cpu[name] = value
    return cpu


def e2e_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["e2e"]
    ours, theirs = section.get("tmpmail") or {}, section.get("mailpit") or {}
    load = ours.get("load") or theirs.get("load") or {}
    what = f"{load.get('mails', 0):,} mails, {load.get('connections', 0)} conns"

    def rate(result: dict[str, Any], key: str) -> float | None:
        return (result.get(key) or {}).get("per_s")

    mailpit_stored = rate(theirs, "stored")
    e2e = rate(ours, "received")
    versus = ratio(e2e, mailpit_stored)
    incomplete = "" if ours.get("complete", True) else " (incomplete)"
    return [
        Row(
            label,
            f"{what}: acked",
            per_s(rate(ours, "acked")),
            f"Mailpit {per_s(rate(theirs, 'acked'))}",
            cpu=_cpu(ours.get("cpu")),
        ),
        Row(label, "stored", per_s(rate(ours, "stored")), f"Mailpit {per_s(mailpit_stored)}"),
        Row(
            label,
            f"received by SSE (e2e){incomplete}",
            per_s(e2e),
            f"Mailpit stored {per_s(mailpit_stored)}",
            versus,
            f">= {E2E_VS_MAILPIT:.1f}x Mailpit",
            FAIL if incomplete else at_least(versus, E2E_VS_MAILPIT),
        ),
        Row(
            label,
            "Mailpit, the same load: stored",
            "",
            per_s(mailpit_stored) + ("" if theirs.get("complete", True) else " (incomplete)"),
            cpu=_cpu(theirs.get("cpu")),
        ),
        *_e2e_rounds_row(label, section),
    ]


def _e2e_rounds_row(label: str, section: dict[str, Any]) -> list[Row]:
    """With more than one round: every round's received rate and ratio (the rows above
    are the round of the median ratio)."""
    rounds = section.get("rounds") or []
    if len(rounds) < 2:
        return []
    chosen = section.get("median_round")
    cells = [
        f"{per_s(r.get('received_per_s'))} ({_times(r.get('ratio'))})"
        + (" *" if i == chosen else "")
        for i, r in enumerate(rounds)
    ]
    return [
        Row(
            label,
            f"{len(rounds)} rounds, alternating (* = the one above)",
            ", ".join(cells),
            "received (ratio to Mailpit)",
        )
    ]


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def live_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["live"]
    d = section.get("sse_minus_250_ms") or {}
    at = f"{section.get('rate', 0):g}/s"
    missing = section.get("missing", 0)
    refused = section.get("refused", 0)
    return [
        Row(
            label,
            f"250 -> SSE at {at}: p50",
            ms(d.get("p50")),
            # a sender that fell behind (a loaded machine) did not load the stack as asked
            f"sent at {section.get('achieved_rate') or 0:,.0f}/s",
            target=f"<= {LIVE_P50_MS:g} ms",
            result=at_most(d.get("p50"), LIVE_P50_MS),
            cpu=_cpu(section.get("cpu")),
        ),
        Row(
            label,
            "p99",
            ms(d.get("p99")),
            target=f"<= {LIVE_P99_MS:g} ms",
            result=at_most(d.get("p99"), LIVE_P99_MS),
        ),
        Row(label, "max", ms(d.get("max"))),
        Row(
            label,
            "announced / acked",
            f"{section.get('delivered', 0):,}/{section.get('acked', 0):,}",
            f"refused {refused}" if refused else "",
            target="all",
            result=PASS if not missing and not refused and section.get("acked") else FAIL,
        ),
    ]


def growth_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["growth"]
    sizes = sorted(section.get("sizes", {}), key=int)
    if not sizes:
        return [Row(label, "no sizes measured", result=ERROR)]
    small, large = section["sizes"][sizes[0]], section["sizes"][sizes[-1]]
    names = " / ".join(_count(s) for s in sizes)
    found = []
    for key, what in (("list", "GET /api/messages"), ("get", "GET /api/messages/{id}")):
        http = [section["sizes"][s][f"http_{key}"]["p50_ms"] for s in sizes]
        value = ratio(large[f"http_{key}"]["p50_ms"], small[f"http_{key}"]["p50_ms"])
        found.append(
            Row(
                label,
                f"{what} p50 at {names}",
                " / ".join(f"{v:.2f}" for v in http) + " ms",
                f"port {small[f'port_{key}']['p50_ms']:.2f} / {large[f'port_{key}']['p50_ms']:.2f}"
                " ms",
                value,
                f"<= {GROWTH_WITHIN:g}x of {_count(sizes[0])}",
                at_most(value, GROWTH_WITHIN),
                _cpu(large.get("cpu")) if key == "list" else {},
            )
        )
    return found


def _count(size: str | int) -> str:
    n = int(size)
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def parse_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["parse"]
    parsers = section.get("parsers", {})
    ours = parsers.get("mail.parse", {})
    typical, corpus = ours.get("typical_per_s"), ours.get("corpus_per_s")

    def references(key: str) -> str:
        others = [(name, figures.get(key)) for name, figures in parsers.items()]
        return ", ".join(f"{name} {per_s(v)}" for name, v in others if name != "mail.parse")

    return [
        Row(
            label,
            f"mail.parse, one core: typical {section.get('typical_kib', 5):.1f} KiB",
            per_s(typical),
            references("typical_per_s"),
            target=f">= {PARSE_TYPICAL_PER_S:,.0f}/s",
            result=at_least(typical, PARSE_TYPICAL_PER_S),
            cpu=_cpu(section.get("cpu")),
        ),
        Row(
            label,
            f"the corpus mix ({section.get('corpus_files', 0)} files)",
            per_s(corpus),
            references("corpus_per_s"),
            target=f">= {PARSE_CORPUS_PER_S:,.0f}/s",
            result=at_least(corpus, PARSE_CORPUS_PER_S),
        ),
    ]


def replay_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["replay"]
    found = []
    for run in section.get("replays", []):
        value = run.get("per_s_reading") or run.get("per_s_wall")
        ok = run.get("check") == "ok"
        found.append(
            Row(
                label,
                f"{run['label']} ({run.get('records') or 0:,} records)",
                per_s(value),
                "" if ok else f"not as expected: {run.get('check')}"[:60],
                target=f">= {REPLAY_PER_S:,.0f}/s",
                result=at_least(value, REPLAY_PER_S) if ok else FAIL,
                cpu=_cpu(run.get("cpu")),
            )
        )
    return found or [Row(label, "no replay ran", result=ERROR)]


def fanout_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["fanout"]
    target = f"{FANOUT_CLIENTS:,} clients, p99 <= {FANOUT_P99_MS:g} ms"
    if section.get("status") == NOT_RUN:
        reason = section.get("reason", "")
        return [
            Row(label, "SSE clients on one API process", NOT_RUN, reason, None, target, NOT_RUN)
        ]
    data = section.get("data")
    figures = fanout_figures(data) if data is not None else section.get("figures") or {}
    clients, p99 = figures.get("clients"), figures.get("p99_ms")
    if clients is None or p99 is None:
        return [
            Row(
                label,
                "SSE clients on one API process",
                "see JSON",
                f"exit {section.get('exit_code')}: no clients and p99 found in its JSON",
                target=target,
                result="-",
                cpu=_cpu(section.get("cpu")),
            )
        ]
    missing = figures.get("missing") or 0
    notes = [f"{missing:,} events missing"] if missing else []
    if figures.get("stress_p99_ms") is not None:
        notes.append(f"faster publication (stress, not judged): p99 {ms(figures['stress_p99_ms'])}")
    if section.get("exit_code") != 0:
        notes.append(f"exit {section.get('exit_code')}")
    if clients < FANOUT_CLIENTS:
        notes.append(f"fewer than {FANOUT_CLIENTS:,} clients: not judged")
        result = "-"
    else:
        ok = section.get("exit_code") == 0 and p99 <= FANOUT_P99_MS and not missing
        result = PASS if ok else FAIL
    return [
        Row(
            label,
            f"{clients:,} SSE clients on one API process: p99"
            + (" at the judged rates" if figures.get("stress_p99_ms") is not None else "")
            + (f" (worst of {figures['p99_of']})" if (figures.get("p99_of") or 1) > 1 else ""),
            ms(p99),
            ", ".join(notes),
            target=target,
            result=result,
            cpu=_cpu(section.get("cpu")),
        )
    ]


def mongodb_rows(section: dict[str, Any]) -> list[Row]:
    label = SCENARIO_LABELS["mongodb"]
    load = section.get("load") or {}
    mails = load.get("mails", 0)
    received = (section.get("received") or {}).get("count", 0)
    rate = (section.get("received") or {}).get("per_s")
    return [
        Row(
            label,
            f"a short e2e pass: {mails:,} mails, received by SSE",
            f"{received:,}/{mails:,}",
            f"{per_s(rate)} (no performance reference)",
            target="all received",
            result=PASS if section.get("complete") and received == mails and mails else FAIL,
            cpu=_cpu(section.get("cpu")),
        )
    ]


# --- the fan-out bench's JSON --------------------------------------------------------------


def fanout_figures(data: Any) -> dict[str, Any]:
    """The largest client count in the fan-out bench's JSON and the p99 (ms) measured
    with it: a dict (at any depth) with a ``clients`` count, and the ``p99`` values found
    under it, those of a ``latency`` dict preferred, the shallowest ones taken (an overall
    figure rather than each round's), the worst of them if there are several (one per
    publishing mode, say); and the largest ``missing`` count under it, if any. Modes
    marked ``"judged": false`` (faster than live mail: stress figures) are left out of
    the p99, and the worst of their p99s is given as ``stress_p99_ms``."""
    best: dict[str, Any] | None = None
    for record in _dicts(data):
        clients = record.get("clients")
        if not isinstance(clients, int) or isinstance(clients, bool):
            continue
        modes = record.get("modes")
        modes = modes if isinstance(modes, list) else []
        stress_modes = [m for m in modes if _is_stress(m)]
        if stress_modes:
            record = {**record, "modes": [m for m in modes if not _is_stress(m)]}
        stress = [
            float(p99)
            for m in stress_modes
            if isinstance(p99 := (m.get("latency_ms") or {}).get("p99"), int | float)
        ]
        found = list(_p99s(record, 0, False))
        if not found:
            continue
        preferred = [f for f in found if f[2]] or found
        top = min(depth for depth, _, _ in preferred)
        values = [value for depth, value, _ in preferred if depth == top]
        if best is None or clients > best["clients"]:
            missing = [v for v in _values_of(record, "missing") if isinstance(v, int)]
            best = {
                "clients": clients,
                "p99_ms": float(max(values)),
                "p99_of": len(values),
                "missing": max(missing) if missing else None,
            }
            if stress:
                best["stress_p99_ms"] = max(stress)
    return best or {"clients": None, "p99_ms": None, "p99_of": 0, "missing": None}


def _is_stress(mode: Any) -> bool:
    """A publishing mode the target is not judged at (``bench/fanout.py``'s ``judged``)."""
    return isinstance(mode, dict) and mode.get("judged") is False


def _p99s(node: Any, depth: int, in_latency: bool) -> Iterator[tuple[int, float, bool]]:
    """(depth, value, under a latency key) of every numeric ``p99`` under ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        name = str(key).lower()
        if "p99" in name and isinstance(value, int | float) and not isinstance(value, bool):
            yield depth, float(value), in_latency
        elif isinstance(value, dict | list):
            yield from _p99s(value, depth + 1, in_latency or "latency" in name)


def _values_of(node: Any, key: str) -> Iterator[Any]:
    for record in _dicts(node):
        if key in record:
            yield record[key]


def _dicts(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, dict):
        yield data
        for value in data.values():
            yield from _dicts(value)
    elif isinstance(data, list):
        for value in data:
            yield from _dicts(value)


# --- the table -------------------------------------------------------------------------------


def table(found: list[Row]) -> str:
    """The rows as one plain-text table: the scenario named on its first row only."""
    cpu_names = cpu_columns(found)
    header = ["scenario", "measure", "tmpmail", "reference", "ratio", "target", "result"]
    lines: list[list[str]] = [header + cpu_names]
    previous = None
    for row in found:
        cells = [
            row.scenario if row.scenario != previous else "",
            row.measure,
            row.tmpmail,
            row.reference,
            times(row.ratio),
            row.target,
            row.result,
        ]
        cells += [_pct(row.cpu.get(name)) if row.cpu else "" for name in cpu_names]
        lines.append(cells)
        previous = row.scenario
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    numeric = {4, *range(len(header), len(lines[0]))}
    out = []
    for n, cells in enumerate(lines):
        text = "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        out.append(text.rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def cpu_columns(found: list[Row]) -> list[str]:
    """The usual roles, then any other one the rows name (``ferretdb``), ``other`` last."""
    extra = sorted({name for row in found for name in row.cpu} - set(CPU_COLUMNS))
    return [*(n for n in CPU_COLUMNS if n != "other"), *extra, "other"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def verdicts(found: list[Row]) -> dict[str, int]:
    counts = {PASS: 0, FAIL: 0, NOT_RUN: 0, ERROR: 0}
    for row in found:
        if row.result in counts:
            counts[row.result] += 1
    return counts


def summary_line(found: list[Row]) -> str:
    counts = verdicts(found)
    return (
        f"targets: {counts[PASS]} met, {counts[FAIL]} missed, {counts[NOT_RUN]} not run, "
        f"{counts[ERROR]} scenario errors"
    )


# --- files -----------------------------------------------------------------------------------


def write(record: dict[str, Any], out_dir: Path, text: str) -> list[Path]:
    """``bench.json``, ``table.txt`` and the plots in ``out_dir``; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record_path = out_dir / "bench.json"
    record_path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    table_path = out_dir / "table.txt"
    table_path.write_text(text + "\n")
    return [record_path, table_path, *plots(record, out_dir)]


def plots(record: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG plots of what the record holds; none (and a line saying why) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench.report: no plots: matplotlib is missing (pip install -e '.[bench]')")
        return []
    scenarios = record.get("scenarios", {})
    written = []
    for name, draw in (
        ("live-latency-over-time.png", _live_over_time),
        ("live-latency-distribution.png", _live_distribution),
        ("e2e-over-time.png", _e2e_over_time),
        ("store-growth-latency.png", _growth_distribution),
        ("cpu-share.png", _cpu_share),
    ):
        try:
            fig = draw(plt, scenarios, record)
            if fig is None:
                continue
            path = out_dir / name
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
        except Exception as exc:  # a plot is no reason to lose the table and the JSON
            print(f"bench.report: no {name}: {type(exc).__name__}: {exc}")
            plt.close("all")
            continue
        written.append(path)
    return written


def _live_over_time(plt: Any, scenarios: dict[str, Any], record: dict[str, Any]) -> Any:
    live = scenarios.get("live") or {}
    series = live.get("series") or []
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.scatter([s[0] for s in series], [s[1] for s in series], s=4, alpha=0.5, label="one mail")
    ax.axhline(LIVE_P50_MS, color="tab:green", linestyle="--", label=f"p50 target {LIVE_P50_MS:g}")
    ax.axhline(LIVE_P99_MS, color="tab:red", linestyle="--", label=f"p99 target {LIVE_P99_MS:g}")
    ax.set_yscale("log")
    ax.set_xlabel("s after the first 250")
    ax.set_ylabel("SMTP 250 -> SSE event, ms")
    ax.set_title(f"Live latency at {live.get('rate', 0):g} mails/s ({record.get('started_at')})")
    ax.legend(loc="upper right")
    return fig


def _live_distribution(plt: Any, scenarios: dict[str, Any], record: dict[str, Any]) -> Any:
    live = scenarios.get("live") or {}
    values = sorted(live.get("latencies_ms") or [])
    if not values:
        return None
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    hist.hist(values, bins=60, color="tab:blue")
    hist.set_xlabel("SMTP 250 -> SSE event, ms")
    hist.set_ylabel("mails")
    hist.set_yscale("log")
    hist.set_title("distribution")
    n = len(values)
    cdf.plot(values, [(i + 1) / n for i in range(n)])
    cdf.set_xscale("log")
    cdf.set_xlabel("ms (log)")
    cdf.set_ylabel("share of mails at or below")
    d = live.get("sse_minus_250_ms") or {}
    for key, color in (("p50", "tab:green"), ("p99", "tab:red")):
        if d.get(key) is not None:
            cdf.axvline(d[key], color=color, linestyle=":", label=f"{key} {d[key]:.1f} ms")
    cdf.legend(loc="lower right")
    cdf.set_title(f"cumulative, {n:,} mails")
    return fig


def _e2e_over_time(plt: Any, scenarios: dict[str, Any], record: dict[str, Any]) -> Any:
    e2e = scenarios.get("e2e") or {}
    curves = [
        ("tmpmail stored", (e2e.get("tmpmail") or {}).get("series", {}).get("stored")),
        ("tmpmail received by SSE", (e2e.get("tmpmail") or {}).get("series", {}).get("received")),
        ("Mailpit stored", (e2e.get("mailpit") or {}).get("series", {}).get("stored")),
    ]
    curves = [(label, points) for label, points in curves if points]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for label, points in curves:
        ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
    ax.set_xlabel("s after the first mail sent")
    ax.set_ylabel("mails")
    ax.set_title("End to end, sustained: mails counted over time")
    ax.legend(loc="lower right")
    return fig


def _growth_distribution(plt: Any, scenarios: dict[str, Any], record: dict[str, Any]) -> Any:
    growth = scenarios.get("growth") or {}
    sizes = sorted(growth.get("sizes") or {}, key=int)
    if not sizes:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in zip(
        axes,
        ("http_list", "http_get"),
        ("GET /api/messages", "GET /api/messages/{id}"),
        strict=True,
    ):
        data = [growth["sizes"][s][key].get("latencies_ms") or [0.0] for s in sizes]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(sizes) + 1), [_count(s) for s in sizes])
        ax.set_xlabel("messages stored")
        ax.set_ylabel("ms (whiskers 1.5 IQR)")
        ax.set_title(title)
    fig.suptitle("Store growth through the HTTP API")
    return fig


def _cpu_share(plt: Any, scenarios: dict[str, Any], record: dict[str, Any]) -> Any:
    found = [row for row in rows(record) if row.cpu]
    if not found:
        return None
    names = cpu_columns(found)
    labels = [f"{row.scenario}: {row.measure}"[:60] for row in found]

    def share(row: Row, name: str) -> float:
        # An ingest row's sink and Mailpit figures are over their own runs: one bar is
        # tmpmail's run only (the table has the rest).
        if row.scenario == SCENARIO_LABELS["ingest"] and name in ("sink", "mailpit"):
            return 0.0
        return row.cpu.get(name, 0.0)

    fig, ax = plt.subplots(figsize=(11, 0.35 * len(found) + 1.5))
    left = [0.0] * len(found)
    for name in names:
        widths = [share(row, name) for row in found]
        if not any(widths):
            continue
        color = "lightgray" if name == "other" else f"C{names.index(name) % 10}"
        ax.barh(labels, widths, left=left, label=name, color=color)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("% of one core (2 cores: 200%)")
    ax.set_title("CPU share of every process, by window (ingest rows: tmpmail's run)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig
