"""The pure parts of ``make bench``: ratios and verdicts, the table, Mailpit's count, the
CPU arithmetic and the fan-out bench's figures. No process is started and nothing is
timed; neither matplotlib nor psutil (the ``bench`` extra) is needed."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report
from bench.cpu import Snapshot, shares
from bench.e2e import cumulative, split, stored_at
from bench.mailpit import MailpitError, parse_total
from bench.run import BenchPorts, fanout_options

# --- ratios and verdicts ----------------------------------------------------------------------


def test_ratio_is_none_without_both_figures() -> None:
    assert report.ratio(300.0, 200.0) == pytest.approx(1.5)
    assert report.ratio(None, 200.0) is None
    assert report.ratio(300.0, None) is None
    assert report.ratio(300.0, 0.0) is None


def test_bounds_hold_at_equality_and_say_nothing_without_a_figure() -> None:
    assert report.at_least(1.0, 1.0) == report.PASS
    assert report.at_least(0.99, 1.0) == report.FAIL
    assert report.at_most(50.0, 50.0) == report.PASS
    assert report.at_most(50.01, 50.0) == report.FAIL
    assert report.at_least(None, 1.0) == "-"
    assert report.at_most(None, 1.0) == "-"


def _ingest_run(rate: float | None, cpu: float, **extra: Any) -> dict[str, Any]:
    return {
        "mails_per_s": rate,
        "cpu_pct": cpu,
        "client_cpu_pct": 5.0,
        "stack_cpu_pct": extra.get("stack", {}),
        "machine_cpu_pct": extra.get("machine"),
    }


def _ingest_section(ours: float | None, sink: float, mailpit: float) -> dict[str, Any]:
    return {
        "scenarios": [
            {
                "name": "20 conns, reused (-d)",
                "ingest": {
                    "mails_per_s": ours,
                    "runs": [
                        _ingest_run(
                            ours, 60.0, stack={"kafka": 40.0, "streams": 30.0}, machine=190.0
                        )
                    ],
                },
                "sink": {"mails_per_s": sink, "runs": [_ingest_run(sink, 95.0)]},
                "mailpit": {"mails_per_s": mailpit, "runs": [_ingest_run(mailpit, 70.0)]},
            }
        ]
    }


def test_ingest_is_judged_against_the_sink_not_mailpit() -> None:
    (row,) = report.ingest_rows(_ingest_section(ours=1500.0, sink=2000.0, mailpit=1000.0))
    assert row.ratio == pytest.approx(0.75)
    assert row.result == report.FAIL
    (row,) = report.ingest_rows(_ingest_section(ours=2000.0, sink=2000.0, mailpit=9000.0))
    assert row.result == report.PASS


def test_ingest_cpu_puts_each_server_in_its_column_and_the_rest_in_other() -> None:
    (row,) = report.ingest_rows(_ingest_section(ours=1500.0, sink=2000.0, mailpit=1000.0))
    assert row.cpu["ingest"] == 60.0
    assert row.cpu["kafka"] == 40.0 and row.cpu["streams"] == 30.0
    assert row.cpu["sink"] == 95.0 and row.cpu["mailpit"] == 70.0
    assert row.cpu["load"] == 5.0
    # the machine's 190% less ingest 60, load 5, kafka 40 and streams 30
    assert row.cpu["other"] == pytest.approx(55.0)


def test_a_failed_ingest_run_has_no_ratio_and_no_verdict() -> None:
    (row,) = report.ingest_rows(_ingest_section(ours=None, sink=2000.0, mailpit=1000.0))
    assert row.ratio is None
    assert row.result == "-"


def _e2e(received: float | None, mailpit_stored: float | None, complete: bool = True) -> dict:
    load = {"mails": 10_000, "connections": 20}
    return {
        "tmpmail": {
            "load": load,
            "complete": complete,
            "acked": {"per_s": 3000.0},
            "stored": {"per_s": 1700.0},
            "received": {"per_s": received},
            "cpu": {"cpu_pct": {"streams": 99.0}},
        },
        "mailpit": {"load": load, "acked": {"per_s": 1600.0}, "stored": {"per_s": mailpit_stored}},
    }


def test_e2e_is_the_received_rate_over_mailpits_storing_rate() -> None:
    rows = report.e2e_rows(_e2e(received=1650.0, mailpit_stored=1500.0))
    (judged,) = [row for row in rows if row.target]
    assert judged.ratio == pytest.approx(1.1)
    assert judged.result == report.PASS
    assert rows[0].cpu == {"streams": 99.0}
    (judged,) = [r for r in report.e2e_rows(_e2e(1400.0, 1500.0)) if r.target]
    assert judged.result == report.FAIL


def test_an_incomplete_e2e_run_fails_whatever_its_rate() -> None:
    rows = report.e2e_rows(_e2e(received=5000.0, mailpit_stored=1500.0, complete=False))
    (judged,) = [row for row in rows if row.target]
    assert judged.result == report.FAIL
    assert "incomplete" in judged.measure


def test_live_latency_targets_and_missing_mails() -> None:
    section = {
        "rate": 200.0,
        "acked": 3000,
        "delivered": 2999,
        "missing": 1,
        "refused": 0,
        "sse_minus_250_ms": {"p50": 7.0, "p99": 51.0, "max": 80.0},
    }
    p50, p99, _, announced = report.live_rows(section)
    assert p50.result == report.PASS
    assert p99.result == report.FAIL
    assert announced.result == report.FAIL


def _growth(list_ms: tuple[float, float], get_ms: tuple[float, float]) -> dict[str, Any]:
    def entry(list_p50: float, get_p50: float) -> dict[str, Any]:
        return {
            "http_list": {"p50_ms": list_p50},
            "http_get": {"p50_ms": get_p50},
            "port_list": {"p50_ms": 0.2},
            "port_get": {"p50_ms": 0.1},
        }

    return {
        "sizes": {
            "100000": entry(list_ms[1], get_ms[1]),
            "1000": entry(list_ms[0], get_ms[0]),
            "10000": entry(list_ms[0], get_ms[0]),
        }
    }


def test_store_growth_compares_the_largest_size_with_the_smallest() -> None:
    listing, getting = report.growth_rows(_growth(list_ms=(2.0, 3.0), get_ms=(2.0, 3.1)))
    assert listing.ratio == pytest.approx(1.5) and listing.result == report.PASS
    assert getting.ratio == pytest.approx(1.55) and getting.result == report.FAIL
    assert "1k / 10k / 100k" in listing.measure


def test_replay_not_as_expected_fails_even_when_fast() -> None:
    section = {
        "replays": [
            {"label": "full store, run 1", "records": 10, "per_s_reading": 9000.0, "check": "ok"},
            {"label": "into an empty store", "per_s_reading": 9000.0, "check": "new 5, not 10"},
        ]
    }
    first, second = report.replay_rows(section)
    assert first.result == report.PASS
    assert second.result == report.FAIL


def test_a_scenario_that_failed_or_did_not_run_has_a_row_saying_so() -> None:
    record = {
        "scenarios": {
            "parse": {"error": "boom"},
            "fanout": {"status": report.NOT_RUN, "reason": "bench/fanout.py does not exist yet"},
        }
    }
    rows = report.rows(record)
    assert [row.result for row in rows] == [report.ERROR, report.NOT_RUN]
    assert report.verdicts(rows)[report.ERROR] == 1


# --- the table --------------------------------------------------------------------------------


def test_the_table_names_each_scenario_once_and_aligns_its_columns() -> None:
    rows = [
        report.Row("1 ingest alone", "1 conn", "100/s", "sink 200/s", 0.5, ">= 1.0x", "FAIL"),
        report.Row("1 ingest alone", "50 conns", "900/s", cpu={"ingest": 61.4, "ferretdb": 3.0}),
        report.Row("3 live latency", "p50", "7.00 ms"),
    ]
    lines = report.table(rows).splitlines()
    header, rule, *body = lines
    assert header.split()[:7] == [
        "scenario",
        "measure",
        "tmpmail",
        "reference",
        "ratio",
        "target",
        "result",
    ]
    # a role outside the usual columns comes after them, the rest of the machine last
    assert header.split()[-2:] == ["ferretdb", "other"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert [line.startswith("1 ingest alone") for line in body] == [True, False, False]
    assert body[2].startswith("3 live latency")
    assert "0.50x" in body[0]
    assert " 61 " in body[1] + " "
    # the ratio column is right-aligned: every body line has it end at the same place
    end = header.index("ratio") + len("ratio")
    assert body[0][:end].endswith("0.50x")


def test_the_summary_counts_the_verdicts() -> None:
    rows = [
        report.Row("a", "x", result=report.PASS),
        report.Row("a", "y", result=report.FAIL),
        report.Row("b", "z", result=report.NOT_RUN),
    ]
    assert report.summary_line(rows) == ("targets: 1 met, 1 missed, 1 not run, 0 scenario errors")


# --- Mailpit's count --------------------------------------------------------------------------


def test_mailpits_total_is_read_from_its_message_list() -> None:
    body = {"total": 12, "unread": 12, "count": 1, "messages_count": 12, "messages": [{}]}
    assert parse_total(body) == 12
    assert parse_total({"messages_count": 3}) == 3
    assert parse_total({"total": 0, "messages": []}) == 0


@pytest.mark.parametrize(
    "body", [{}, {"total": "12"}, {"total": -1}, {"total": True}, [], "not json", None]
)
def test_mailpits_total_is_never_guessed(body: Any) -> None:
    with pytest.raises(MailpitError):
        parse_total(body)


# --- the CPU arithmetic -----------------------------------------------------------------------


def test_cpu_shares_count_each_process_over_the_window() -> None:
    before = Snapshot(
        wall=10.0,
        roles={"ingest": {1: 5.0}, "kafka": {2: 100.0, 3: 7.0}, "ferretdb": {}},
        own=1.0,
        children=2.0,
        machine=1000.0,
    )
    after = Snapshot(
        wall=12.0,  # 2 s later
        roles={
            "ingest": {1: 6.0, 4: 0.5},  # pid 4 started in the window: all of it counts
            "kafka": {2: 101.0},  # pid 3 went away: nothing counted for it
            "ferretdb": {},  # no process: no column
        },
        own=1.5,
        children=2.5,  # a smtp-source run reaped meanwhile
        machine=1004.0,
    )
    assert shares(before, after) == {
        "ingest": 75.0,  # 1.5 s of CPU in 2 s
        "kafka": 50.0,
        "load": 50.0,
        "other": 25.0,  # 4 s busy, 3.5 of them ours
    }


def test_cpu_shares_of_an_empty_window_are_empty() -> None:
    snap = Snapshot(wall=1.0, roles={}, own=0.0, children=0.0, machine=None)
    assert shares(snap, snap) == {}


# --- e2e helpers ------------------------------------------------------------------------------


def test_the_load_splits_evenly_over_the_mailboxes() -> None:
    assert split(10, 4) == [3, 3, 2, 2]
    assert split(8, 2) == [4, 4]
    assert sum(split(10_001, 7)) == 10_001
    with pytest.raises(ValueError):
        split(10, 0)


def test_a_count_is_reached_midway_between_the_polls_around_it() -> None:
    samples = [(1.0, 0), (2.0, 40), (3.0, 99), (4.0, 100), (5.0, 100)]
    assert stored_at(samples, 100) == pytest.approx(3.5)
    assert stored_at(samples, 0) == pytest.approx(1.0)
    assert stored_at(samples, 101) is None


def test_counts_over_time_keep_the_last_point() -> None:
    points = cumulative([10.3, 10.1, 10.2, 10.5, 10.4], first=10.0, points=2)
    assert points[-1] == [0.5, 5]
    assert [count for _, count in points] == sorted(count for _, count in points)
    assert cumulative([], first=0.0) == []


# --- the fan-out bench ------------------------------------------------------------------------


def test_fanout_figures_are_those_of_the_largest_client_count() -> None:
    data = {
        "counts": [
            {"clients": 1000, "clients_cpu_pct": 20000, "latency_ms": {"p50": 3, "p99": 9.0}},
            {"clients": 10000, "missing": 0, "latency_ms": {"p50": 80, "p99": 420.5}},
        ]
    }
    assert report.fanout_figures(data) == {
        "clients": 10000,
        "p99_ms": 420.5,
        "p99_of": 1,
        "missing": 0,
    }
    assert report.fanout_figures({"nothing": 1})["p99_ms"] is None


def test_fanout_figures_take_the_overall_latency_and_the_worst_mode() -> None:
    count = {
        "clients": 10000,
        "modes": [
            {
                "mode": "2000/s",
                "missing": 0,
                "latency_ms": {"p50": 300.0, "p99": 410.0},
                "kafka_ms": {"p99": 900.0},  # the broker's part, not the latency itself
                "rounds": [{"latency_ms": {"p99": 700.0}}],  # one round, not the overall
            },
            {"mode": "burst", "missing": 2, "latency_ms": {"p50": 90.0, "p99": 190.0}},
        ],
    }
    assert report.fanout_figures({"counts": [count]}) == {
        "clients": 10000,
        "p99_ms": 410.0,
        "p99_of": 2,
        "missing": 2,
    }


def test_fanout_figures_leave_stress_modes_out_of_the_judged_p99() -> None:
    count = {
        "clients": 10000,
        "modes": [
            {"mode": "2000/s", "judged": True, "missing": 0, "latency_ms": {"p99": 60.0}},
            {"mode": "5000/s", "judged": True, "missing": 0, "latency_ms": {"p99": 300.0}},
            {"mode": "burst", "judged": False, "missing": 0, "latency_ms": {"p99": 1000.0}},
        ],
    }
    figures = report.fanout_figures({"counts": [count]})
    assert (figures["p99_ms"], figures["p99_of"], figures["stress_p99_ms"]) == (300.0, 2, 1000.0)
    section = {"status": "ran", "exit_code": 0, "figures": figures}
    (row,) = report.fanout_rows(section)
    assert row.result == report.PASS
    assert "stress, not judged" in row.reference and "p99 1000.0 ms" in row.reference


def test_fanout_row_judges_only_at_the_target_count() -> None:
    def row(clients: int, p99: float, missing: int = 0) -> report.Row:
        section = {
            "status": "ran",
            "exit_code": 0,
            "figures": {"clients": clients, "p99_ms": p99, "missing": missing},
        }
        (found,) = report.fanout_rows(section)
        return found

    assert row(10_000, 480.0).result == report.PASS
    assert row(10_000, 520.0).result == report.FAIL
    assert row(10_000, 100.0, missing=3).result == report.FAIL
    assert row(300, 100.0).result == "-"


def test_fanout_gets_our_ports_and_only_the_options_it_has() -> None:
    help_text = "usage: fanout [--smtp-port SMTP_PORT] [--http-port HTTP_PORT] [--clients C]"
    ports = BenchPorts()
    assert fanout_options(help_text, quick=False, ports=ports) == [
        "--smtp-port",
        str(ports.smtp),
        "--http-port",
        str(ports.http),
        "--clients",
        "10000",
    ]
    assert "--quick" in fanout_options(help_text + " [--quick]", quick=True, ports=ports)
    assert fanout_options("", quick=True, ports=ports) == []


# --- e2e rounds ---------------------------------------------------------------------------


def _pair(received: float, mailpit_stored: float, complete: bool = True) -> tuple[dict, dict]:
    section = _e2e(received, mailpit_stored, complete)
    return section["tmpmail"], section["mailpit"]


def test_the_reported_round_is_the_median_ratio() -> None:
    from bench.e2e import median_round

    pairs = [_pair(1500.0, 1500.0), _pair(900.0, 1500.0), _pair(1800.0, 1500.0)]
    assert median_round(pairs) == 0
    assert median_round([_pair(1800.0, 1500.0), _pair(900.0, 1500.0)]) == 1  # lower middle
    assert median_round([_pair(1000.0, 1000.0)]) == 0


def test_an_incomplete_round_is_reported_whatever_the_others() -> None:
    from bench.e2e import median_round

    pairs = [_pair(1500.0, 1500.0), _pair(9000.0, 1500.0, complete=False), _pair(1600.0, 1500.0)]
    assert median_round(pairs) == 1


def test_every_round_is_listed_under_the_judged_row() -> None:
    from bench.e2e import round_summary

    pairs = [_pair(1500.0, 1500.0), _pair(900.0, 1500.0), _pair(1800.0, 1500.0)]
    section = {
        **_e2e(1500.0, 1500.0),
        "rounds": [round_summary(o, t) for o, t in pairs],
        "median_round": 0,
    }
    rows = report.e2e_rows(section)
    (listed,) = [row for row in rows if "rounds" in row.measure]
    assert listed.tmpmail == "1,500/s (1.00x) *, 900/s (0.60x), 1,800/s (1.20x)"
    assert not listed.target  # only the median round's row is judged
    assert (
        len([row for row in report.e2e_rows(_e2e(1500.0, 1500.0)) if "rounds" in row.measure]) == 0
    )
