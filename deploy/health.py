"""Readiness probes, one per process, each bounded by a short timeout and never raising.

They implement the services' readiness contracts:

* ingest process ``i`` (of ``TMPMAIL_INGEST_PROCESSES``, all on one port) has written
  ``<run>/ingest-<i>.ready`` (JSON with its pid) once it listens; the port answers ``EHLO``;
* streams worker ``i`` (of ``TMPMAIL_STREAMS_PROCESSES``, one consumer group) has written
  ``<run>/streams-<i>.ready`` (JSON with its pid and its raw-mail partitions) and not
  removed it; the launcher also waits until the workers' files together name every
  partition once (:func:`streams_group_settled`): the group has finished rebalancing;
* api answers ``GET /readyz`` with 200;
* Kafka answers a metadata request that lists a registered broker (an open port is not
  enough: a broker still starting accepts connections before it can create topics);
* the FerretDB stand-in accepts TCP connections.
"""

from __future__ import annotations

import json
import smtplib
import socket
import urllib.error
import urllib.request
from pathlib import Path

from bus.admin import broker_registered
from deploy.procs import proc_info
from schemas.settings import Settings

PROBE_TIMEOUT_S = 2.0


def connect_host(host: str) -> str:
    """Where to connect to reach a listener bound to ``host`` (wildcards mean loopback)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def tcp_ready(host: str, port: int) -> bool:
    try:
        with socket.create_connection((connect_host(host), port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def kafka_ready(settings: Settings) -> bool:
    """The first bootstrap server accepts TCP, then answers metadata with a broker listed."""
    host = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")[0].strip("[]")
    if not tcp_ready(host, settings.kafka_port):
        return False
    return broker_registered(settings, PROBE_TIMEOUT_S)


def smtp_ready(settings: Settings) -> bool:
    try:
        with smtplib.SMTP(
            connect_host(settings.smtp_host),
            settings.smtp_port,
            local_hostname="localhost",
            timeout=PROBE_TIMEOUT_S,
        ) as smtp:
            code, _ = smtp.ehlo()
            return code == 250
    except (OSError, smtplib.SMTPException):
        return False


def http_ok(settings: Settings, path: str) -> bool:
    url = f"http://{connect_host(settings.http_host)}:{settings.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def api_ready(settings: Settings) -> bool:
    return http_ok(settings, "/readyz")


def ready_file_pid(path: Path) -> int | None:
    """The pid written in the ready file ``path``, or None if it is absent or unreadable."""
    try:
        record = json.loads(path.read_text())
        return int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ready_file_partitions(path: Path) -> list[int] | None:
    """The partitions a streams worker's ready file names, or None if absent or unreadable."""
    try:
        partitions = json.loads(path.read_text())["partitions"]
        return [int(p) for p in partitions]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def written_by(path: Path, expected_pid: int | None = None) -> bool:
    """Ready file ``path`` present and written by ``expected_pid`` (or by any live process)."""
    pid = ready_file_pid(path)
    if pid is None:
        return False
    if expected_pid is not None:
        return pid == expected_pid
    info = proc_info(pid)
    return info is not None and not info.zombie


def streams_process_ready(
    settings: Settings, index: int = 0, expected_pid: int | None = None
) -> bool:
    """Streams worker ``index`` has partitions and its table: its ready file names
    ``expected_pid`` (or a live process)."""
    return written_by(settings.streams_ready_file(index), expected_pid)


def streams_ready(settings: Settings, processes: int | None = None) -> bool:
    """Every streams worker ``0 .. processes - 1`` (default: TMPMAIL_STREAMS_PROCESSES) has
    its ready file, by a live pid."""
    count = settings.streams_processes if processes is None else processes
    return all(streams_process_ready(settings, index) for index in range(count))


def streams_group_settled(settings: Settings, processes: int) -> bool:
    """The ready files of workers ``0 .. processes - 1`` together name each raw-mail
    partition exactly once. Until then a rebalance is under way (a worker that joined
    last has none yet, or one that had them all still says so)."""
    named: list[int] = []
    for index in range(processes):
        partitions = ready_file_partitions(settings.streams_ready_file(index))
        if not partitions:
            return False
        named += partitions
    return sorted(named) == list(range(settings.topic_partitions))


def ingest_process_ready(settings: Settings, index: int, expected_pid: int | None = None) -> bool:
    """Ingest process ``index`` listens: its ready file names ``expected_pid`` (or a live one)."""
    return written_by(settings.ingest_ready_file(index), expected_pid)


def ingest_ready(settings: Settings, processes: int | None = None) -> bool:
    """Every ingest process ``0 .. processes - 1`` (default: TMPMAIL_INGEST_PROCESSES) has its
    ready file, by a live pid, and the port answers EHLO.

    EHLO alone reaches one process of several; a ready file alone can outlive its writer
    under a pid that comes back (a restarted container's ingest is pid 1 again)."""
    count = settings.ingest_processes if processes is None else processes
    files = all(ingest_process_ready(settings, index) for index in range(count))
    return files and smtp_ready(settings)
