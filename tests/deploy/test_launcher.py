"""The launcher's pieces without the services: plans, pid files, stops, ports, Kafka alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from deploy import health, kafka, procs
from deploy.cli import main
from deploy.launcher import (
    Launcher,
    LaunchError,
    make_plan,
    role_of,
    scaled,
    service_command,
    start_order,
)
from deploy.procs import (
    PidFile,
    can_bind,
    is_listening,
    proc_info,
    spawn,
    stop_group,
    stop_groups,
)
from schemas.runtime import write_ready_file
from schemas.settings import Settings, load_settings
from schemas.topics import topic_specs

MakeSettings = Callable[..., Settings]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    """Settings in a private state dir and on free ports, from a clean TMPMAIL_* env."""
    for key in list(os.environ):
        if key.startswith("TMPMAIL_"):
            monkeypatch.delenv(key)
    ports = {name: free_port() for name in ("smtp", "http", "kafka", "controller", "mongo")}
    monkeypatch.setenv("TMPMAIL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TMPMAIL_SMTP_PORT", str(ports["smtp"]))
    monkeypatch.setenv("TMPMAIL_HTTP_PORT", str(ports["http"]))
    monkeypatch.setenv("TMPMAIL_KAFKA_BOOTSTRAP", f"127.0.0.1:{ports['kafka']}")
    monkeypatch.setenv("TMPMAIL_KAFKA_CONTROLLER_PORT", str(ports["controller"]))
    monkeypatch.setenv("TMPMAIL_MONGO_URL", f"mongodb://127.0.0.1:{ports['mongo']}/")

    def make(**overrides: object) -> Settings:
        return load_settings(**overrides)

    return make


@pytest.fixture
def listener() -> Iterator[Callable[[int], socket.socket]]:
    sockets: list[socket.socket] = []

    def listen(port: int) -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()
        sockets.append(sock)
        return sock

    yield listen
    for sock in sockets:
        sock.close()


# --- plans ---------------------------------------------------------------------------


def test_sqlite_plan_runs_kafka_and_the_services(make_settings: MakeSettings) -> None:
    plan = make_plan(make_settings(), "sqlite")
    assert plan.processes == ["kafka", "streams-0", "api", "ingest-0"]
    assert [port.role for port in plan.ports] == ["smtp", "http", "kafka", "kafka controller"]


def test_mongodb_plan_adds_ferretdb_for_a_loopback_url(make_settings: MakeSettings) -> None:
    settings = make_settings()
    plan = make_plan(settings, "mongodb")
    assert plan.processes == ["kafka", "ferretdb", "streams-0", "api", "ingest-0"]
    mongo = [port for port in plan.ports if port.role == "mongo"]
    assert [(port.port, port.variable) for port in mongo] == [
        (settings.mongo_port, "TMPMAIL_MONGO_URL")
    ]


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://db.example.net:27017/",
        "mongodb+srv://cluster0.example.net/",
        "mongodb://127.0.0.1:27017,10.0.0.2:27017/",
    ],
)
def test_remote_mongodb_is_never_started(make_settings: MakeSettings, url: str) -> None:
    plan = make_plan(make_settings(mongo_url=url), "mongodb")
    assert "ferretdb" not in plan.processes
    assert "mongo" not in [port.role for port in plan.ports]


def test_remote_kafka_is_not_started(make_settings: MakeSettings) -> None:
    plan = make_plan(make_settings(kafka_bootstrap="kafka.example.net:9092"), "sqlite")
    assert plan.processes == ["streams-0", "api", "ingest-0"]


def test_a_plan_runs_one_named_process_per_ingest(make_settings: MakeSettings) -> None:
    plan = make_plan(make_settings(ingest_processes=3), "sqlite")
    assert plan.ingest_processes == 3
    assert plan.processes == ["kafka", "streams-0", "api", "ingest-0", "ingest-1", "ingest-2"]
    assert [port.role for port in plan.ports].count("smtp") == 1, "one port for all of them"


def test_a_plan_runs_one_named_process_per_streams_worker(make_settings: MakeSettings) -> None:
    plan = make_plan(make_settings(streams_processes=3, ingest_processes=2), "sqlite")
    assert plan.streams_processes == 3
    assert plan.processes == [
        *("kafka", "streams-0", "streams-1", "streams-2", "api", "ingest-0", "ingest-1")
    ]
    assert plan.names("streams") == ["streams-0", "streams-1", "streams-2"]
    assert plan.names("api") == ["api"]


def test_process_names_of_the_scaled_roles() -> None:
    assert [scaled(name) for name in ("ingest-0", "ingest-12", "streams-3")] == [
        ("ingest", 0),
        ("ingest", 12),
        ("streams", 3),
    ]
    for other in (
        *("ingest", "ingest-", "ingest-01", "ingest-x", "api", "ingest-1.ready"),
        *("streams", "streams-", "api-0", "kafka-1"),
    ):
        assert scaled(other) is None, other
    assert [role_of(name) for name in ("ingest-3", "streams-1", "api", "kafka")] == [
        *("ingest", "streams", "api", "kafka")
    ]
    names = ["ingest-10", "kafka", "streams-1", "ingest-9", "api", "ingest-0", "streams-0"]
    assert sorted([*names, "ferretdb"], key=start_order) == [
        *("kafka", "ferretdb", "streams-0", "streams-1", "api"),
        *("ingest-0", "ingest-9", "ingest-10"),
    ]


def test_each_scaled_process_is_started_with_its_index() -> None:
    assert service_command("ingest-2")[1:] == ["-m", "deploy.cli", "ingest", "--index", "2"]
    assert service_command("streams-1")[1:] == ["-m", "deploy.cli", "streams", "--index", "1"]
    assert service_command("api")[1:] == ["-m", "deploy.cli", "api"]
    assert service_command("ingest-0")[0] == sys.executable


def test_stack_json_records_the_ingest_processes(make_settings: MakeSettings) -> None:
    settings = make_settings(ingest_processes=4)
    launcher = Launcher(settings, out=lambda line: None)
    plan = make_plan(settings, "mongodb")
    settings.run_dir.mkdir(parents=True)
    launcher.stack_file.write_text(json.dumps(asdict(plan)))
    assert json.loads(launcher.stack_file.read_text())["ingest_processes"] == 4
    # `down` and `status` run without TMPMAIL_INGEST_PROCESSES: the record decides.
    assert Launcher(make_settings(), out=lambda line: None).recorded_plan() == plan


def test_a_stack_json_from_before_the_process_counts_means_one_each(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    launcher = Launcher(settings, out=lambda line: None)
    record = asdict(make_plan(make_settings(streams_processes=2, ingest_processes=2), "sqlite"))
    del record["ingest_processes"], record["streams_processes"]
    settings.run_dir.mkdir(parents=True)
    launcher.stack_file.write_text(json.dumps(record))
    assert launcher.recorded_plan().processes == ["kafka", "streams-0", "api", "ingest-0"]


def test_leftover_ingest_pid_files_are_known(make_settings: MakeSettings) -> None:
    """`down` after `up --ingest 5`, when stack.json says 2 (or is gone), stops all five."""
    settings = make_settings()
    launcher = Launcher(settings, out=lambda line: None)
    for name in ("ingest-0", "ingest-4", "ingest-11", "streams-0", "streams-3"):
        launcher.pid_file(name).write(os.getpid())
    launcher.pid_file("ingest-x").write(os.getpid())  # not a name of ours
    launcher.pid_file("streams").write(os.getpid())  # nor this
    assert launcher.known_processes() == [
        *("kafka", "ferretdb", "streams-0", "streams-3", "api"),
        *("ingest-0", "ingest-4", "ingest-11"),
    ]
    assert set(launcher.running()) == {
        *("ingest-0", "ingest-4", "ingest-11", "streams-0", "streams-3")
    }


def test_status_shows_one_line_per_ingest_process(
    make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings()
    plan = make_plan(make_settings(ingest_processes=2), "sqlite")
    launcher = Launcher(settings)
    settings.run_dir.mkdir(parents=True)
    launcher.stack_file.write_text(json.dumps(asdict(plan)))
    launcher.pid_file("ingest-1").write(os.getpid())
    write_ready_file(settings.ingest_ready_file(1), {"pid": os.getpid(), "index": 1})
    launcher.pid_file("ingest-2").write(os.getpid())  # a leftover of a larger N: shown too
    assert launcher.status() == 1  # kafka, streams-0, api and ingest-0 are not running
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert list(lines) == ["kafka", "streams-0", "api", "ingest-0", "ingest-1", "ingest-2"]
    assert "alive=no" in lines["ingest-0"]
    assert f"pid={os.getpid()}" in lines["ingest-1"] and "ready=yes" in lines["ingest-1"]
    assert "ready=no" in lines["ingest-2"], "ingest-2 has no ready file"
    assert f"port={settings.smtp_port}" in lines["ingest-2"]
    assert lines["ingest-1"].endswith(str(settings.log_dir / "ingest-1.log"))


def test_server_properties_listen_on_the_configured_ports(make_settings: MakeSettings) -> None:
    settings = make_settings()
    props = kafka.server_properties(settings)
    broker = f"127.0.0.1:{settings.kafka_port}"
    controller = f"127.0.0.1:{settings.kafka_controller_port}"
    assert props["listeners"] == f"PLAINTEXT://{broker},CONTROLLER://{controller}"
    assert props["advertised.listeners"] == f"PLAINTEXT://{broker}"
    assert props["controller.quorum.voters"] == f"1@{controller}"
    assert props["log.dirs"].startswith(str(settings.state_dir))


# --- pid files and stops -------------------------------------------------------------


def test_pid_file_recognises_its_process_only(tmp_path: Path) -> None:
    pid_file = PidFile(tmp_path / "x.pid")
    pid_file.write(os.getpid())
    assert pid_file.live_pid() == os.getpid()
    pid, ticks = pid_file.read() or (0, None)
    pid_file.path.write_text(f'{{"pid": {pid}, "start_ticks": {(ticks or 0) + 1}}}')
    assert pid_file.live_pid() is None, "a reused pid must not count as ours"
    pid_file.path.write_text("not json")
    assert pid_file.live_pid() is None


def _spawn(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.PIPE
    )


def test_stop_group_terminates_the_whole_group() -> None:
    proc = _spawn(
        "import subprocess, sys; subprocess.Popen(['sleep', '60']); print('up', flush=True); "
        "import time; time.sleep(60)"
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    assert stop_group(proc.pid, timeout_s=10) == "stopped"
    proc.wait(timeout=5)
    assert proc_info(proc.pid) is None


def test_stop_groups_stops_several_in_one_wait() -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    procs_ = [_spawn(f"{stubborn}print('up', flush=True); time.sleep(60)") for _ in range(3)]
    for proc in procs_:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    started = time.monotonic()
    outcomes = stop_groups([proc.pid for proc in procs_], timeout_s=1.0)
    assert outcomes == {proc.pid: "killed" for proc in procs_}
    assert time.monotonic() - started < 4, "one wait for all, not one each"
    for proc in procs_:
        assert proc.wait(timeout=5) == -signal.SIGKILL


def test_stop_group_kills_what_ignores_sigterm() -> None:
    proc = _spawn(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    started = time.monotonic()
    assert stop_group(proc.pid, timeout_s=0.5) == "killed"
    assert time.monotonic() - started < 5
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_spawn_appends_to_its_log_and_rotates_a_big_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "x.log"
    log.write_text("old run\n")
    spawn(["echo", "first"], log, os.environ).wait(timeout=10)
    assert log.read_text().startswith("old run\n") and "first" in log.read_text()
    monkeypatch.setattr(procs, "LOG_ROTATE_BYTES", 10)
    spawn(["echo", "second"], log, os.environ).wait(timeout=10)
    assert "first" in (tmp_path / "x.log.1").read_text()
    assert "first" not in log.read_text() and "second" in log.read_text()


# --- refusals, down and status when nothing runs --------------------------------------


def test_up_names_a_taken_port_and_its_variable(
    make_settings: MakeSettings, listener: Callable[[int], socket.socket]
) -> None:
    settings = make_settings()
    listener(settings.smtp_port)
    with pytest.raises(LaunchError) as caught:
        Launcher(settings, out=lambda line: None).up("sqlite", detach=True, timeout_s=5)
    message = str(caught.value)
    assert str(settings.smtp_port) in message
    assert "TMPMAIL_SMTP_PORT" in message
    assert f"pid {os.getpid()}" in message


def test_up_names_a_taken_controller_port(
    make_settings: MakeSettings, listener: Callable[[int], socket.socket]
) -> None:
    settings = make_settings()
    listener(settings.kafka_controller_port)
    with pytest.raises(LaunchError, match="TMPMAIL_KAFKA_CONTROLLER_PORT"):
        Launcher(settings, out=lambda line: None).up("sqlite", detach=True, timeout_s=5)


def test_up_refuses_when_ours_is_running(make_settings: MakeSettings) -> None:
    settings = make_settings()
    launcher = Launcher(settings, out=lambda line: None)
    launcher.pid_file("kafka").write(os.getpid())  # a live process recorded as ours
    with pytest.raises(LaunchError, match="already running"):
        launcher.up("sqlite", detach=True, timeout_s=5)


def test_down_and_status_when_nothing_runs(
    make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings()
    assert main(["down"]) == 0
    assert "tmpmail stopped." in capsys.readouterr().out
    assert main(["status"]) == 1
    assert "not running" in capsys.readouterr().out
    assert main(["health", "api"]) == 1
    assert main(["health", "streams"]) == 1
    assert main(["health", "ingest"]) == 1


def test_down_stops_every_ingest_process_first_and_forgets_their_ready_files(
    make_settings: MakeSettings,
) -> None:
    """Stand-ins (sleep) under the names of a stack whose stack.json says two ingest
    processes and two streams workers, plus a leftover ingest-5 of a larger N: all stop,
    ingest first, then api, the workers, Kafka last."""
    settings = make_settings()
    lines: list[str] = []
    launcher = Launcher(settings, out=lines.append)
    settings.run_dir.mkdir(parents=True)
    plan = make_plan(make_settings(ingest_processes=2, streams_processes=2), "sqlite")
    launcher.stack_file.write_text(json.dumps(asdict(plan)))
    stand_ins = {}
    for name in ("kafka", "streams-0", "streams-1", "api", "ingest-0", "ingest-1", "ingest-5"):
        stand_ins[name] = subprocess.Popen(["sleep", "60"], start_new_session=True)
        launcher.pid_file(name).write(stand_ins[name].pid)
    for index in (0, 1, 5):
        write_ready_file(settings.ingest_ready_file(index), {"pid": 1, "index": index})
    for index in (0, 1):
        write_ready_file(settings.streams_ready_file(index), {"pid": 1, "partitions": [index]})
    assert launcher.down() == 0
    for name, proc in stand_ins.items():
        assert proc.wait(timeout=5) == -signal.SIGTERM, name
    stopping = [line.split()[1] for line in lines if line.startswith("stopping ")]
    assert stopping == [
        *("ingest-0", "ingest-1", "ingest-5", "api", "streams-0", "streams-1", "kafka")
    ]
    assert not list(settings.run_dir.glob("*.pid"))
    assert not list(settings.run_dir.glob("*.ready"))
    assert not launcher.stack_file.exists()


def test_ingest_readiness_is_its_ready_file_by_its_pid(make_settings: MakeSettings) -> None:
    settings = make_settings()
    launcher = Launcher(settings, out=lambda line: None)
    assert not launcher.probe("ingest-1", os.getpid())
    write_ready_file(settings.ingest_ready_file(1), {"pid": os.getpid(), "index": 1})
    assert launcher.probe("ingest-1", os.getpid())
    assert not launcher.probe("ingest-1", os.getpid() + 1), "written by another process"
    assert not launcher.probe("ingest-0", os.getpid()), "each process has its own file"
    assert health.ingest_process_ready(settings, 1)  # any live writer, for `health`


def test_streams_readiness_is_its_ready_file_by_its_pid(make_settings: MakeSettings) -> None:
    settings = make_settings()
    launcher = Launcher(settings, out=lambda line: None)
    assert not launcher.probe("streams-1", os.getpid())
    write_ready_file(settings.streams_ready_file(1), {"pid": os.getpid(), "partitions": [1]})
    assert launcher.probe("streams-1", os.getpid())
    assert not launcher.probe("streams-1", os.getpid() + 1), "written by another process"
    assert not launcher.probe("streams-0", os.getpid()), "each worker has its own file"
    assert not health.streams_ready(settings, 2), "streams-0 has no ready file"
    write_ready_file(settings.streams_ready_file(0), {"pid": os.getpid(), "partitions": [0]})
    assert health.streams_ready(settings, 2)


@pytest.mark.parametrize(
    ("owned", "settled"),
    [
        ([[0, 1, 2], [3, 4, 5]], True),
        ([[5, 0, 3], [1, 4, 2]], True),
        ([[0, 1, 2, 3, 4, 5], None], False),  # the second has not joined yet
        ([[0, 1, 2, 3, 4, 5], []], False),  # it has joined, and nothing yet
        ([[0, 1, 2, 3], [3, 4, 5]], False),  # the first still says it has 3
        ([[0, 1, 2], [4, 5]], False),  # nobody says 3
        ([[0, 1, 2], [3, 4, 5, 6]], False),  # not a partition of the topic
    ],
)
def test_the_streams_group_is_settled_when_each_partition_is_named_once(
    make_settings: MakeSettings, owned: list[list[int] | None], settled: bool
) -> None:
    settings = make_settings()
    assert settings.topic_partitions == 6
    settings.run_dir.mkdir(parents=True)
    for index, partitions in enumerate(owned):
        if partitions is not None:
            record = {"pid": os.getpid(), "partitions": partitions}
            write_ready_file(settings.streams_ready_file(index), record)
    assert health.streams_group_settled(settings, len(owned)) is settled


def test_one_worker_is_settled_only_with_every_partition(make_settings: MakeSettings) -> None:
    settings = make_settings()
    settings.run_dir.mkdir(parents=True)
    record = {"pid": os.getpid(), "partitions": [0, 1, 2]}
    write_ready_file(settings.streams_ready_file(0), record)
    assert not health.streams_group_settled(settings, 1)
    write_ready_file(settings.streams_ready_file(0), {**record, "partitions": list(range(6))})
    assert health.streams_group_settled(settings, 1)


def test_health_ingest_wants_every_ready_file_and_an_smtp_answer(
    make_settings: MakeSettings, listener: Callable[[int], socket.socket]
) -> None:
    settings = make_settings()
    write_ready_file(settings.ingest_ready_file(0), {"pid": os.getpid(), "index": 0})
    assert not health.ingest_ready(settings, 2), "ingest-1 has no ready file"
    write_ready_file(settings.ingest_ready_file(1), {"pid": os.getpid(), "index": 1})
    listener(settings.smtp_port)  # accepts, never greets: a stale file must not pass
    assert not health.ingest_ready(settings, 2)


def test_cli_ingest_counts_and_indexes_are_bounded(
    make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings()
    for bad in ("0", "65", "two"):
        with pytest.raises(SystemExit) as caught:
            main(["up", "--ingest", bad])
        assert caught.value.code == 2
        assert "--ingest" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ingest", "--index", "-1"])
    assert main(["ingest", "--index", "1"]) == 1  # TMPMAIL_INGEST_PROCESSES is 1
    assert "TMPMAIL_INGEST_PROCESSES" in capsys.readouterr().err


def test_cli_streams_counts_and_indexes_are_bounded(
    make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings()
    for bad in ("0", "65", "two"):
        with pytest.raises(SystemExit) as caught:
            main(["up", "--streams", bad])
        assert caught.value.code == 2
        assert "--streams" in capsys.readouterr().err
    # More workers than raw-mail partitions (6): refused before anything starts.
    assert main(["up", "--streams", "7"]) == 1
    err = capsys.readouterr().err
    assert "--streams 7" in err and "TMPMAIL_TOPIC_PARTITIONS (6)" in err and "at most 6" in err
    with pytest.raises(SystemExit):
        main(["streams", "--index", "-1"])
    assert main(["streams", "--index", "1"]) == 1  # TMPMAIL_STREAMS_PROCESSES is 1
    assert "TMPMAIL_STREAMS_PROCESSES" in capsys.readouterr().err


def test_an_open_kafka_port_alone_is_not_ready(
    make_settings: MakeSettings, listener: Callable[[int], socket.socket]
) -> None:
    settings = make_settings()
    launcher = Launcher(settings, out=lambda line: None)
    assert not launcher.probe("kafka", None)
    listener(settings.kafka_port)  # accepts connections, never answers a metadata request
    assert not launcher.probe("kafka", None)


# --- Kafka alone (real broker) -------------------------------------------------------


def test_kafka_starts_takes_topics_and_stops_clean(make_settings: MakeSettings) -> None:
    from confluent_kafka.admin import AdminClient

    settings = make_settings()
    launcher = Launcher(settings, out=print)
    plan = make_plan(settings, "sqlite")
    libs = launcher._provision(plan)
    assert libs is not None
    started = time.monotonic()
    try:
        launcher._start_kafka(libs)
        print(f"kafka ready in {time.monotonic() - started:.1f}s")
        launcher._create_topics()
        topics = AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(
            timeout=10
        )
        for spec in topic_specs(settings):
            assert len(topics.topics[spec.name].partitions) == spec.partitions
    finally:
        stopped = time.monotonic()
        assert launcher.stop_all()
        print(f"kafka stopped in {time.monotonic() - stopped:.1f}s")
    assert kafka.is_formatted(settings)
    assert not launcher.pid_file("kafka").path.exists()
    for port in plan.ports:
        assert can_bind(port.host, port.port), f"port {port.port} still taken"
        assert not is_listening(port.port)


def test_up_prints_the_inbox_page_beside_smtp_and_the_api(make_settings: MakeSettings) -> None:
    settings = make_settings()
    lines: list[str] = []
    Launcher(settings, out=lines.append)._print_addresses(make_plan(settings, "sqlite"))
    printed = "\n".join(lines)
    assert f"Web:  {settings.http_url}/ (the inbox)" in printed
    assert f"API:  {settings.http_url}/api" in printed
    assert f"SMTP: {settings.smtp_host}:{settings.smtp_port}" in printed
