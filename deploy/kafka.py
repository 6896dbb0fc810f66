"""A one-node Kafka 4.x in KRaft mode (broker and controller in one JVM), from Maven jars.

Files under ``<state>/kafka/``:

* ``server.properties``;
* ``log4j2.properties``, the broker's: console on stdout, WARN, INFO for start and stop;
* ``log4j2-tools.properties``, the storage tool's: console on *stderr* at WARN, or its log
  lines would mix with the cluster id it prints on stdout;
* ``data/`` (``log.dirs``) and ``libs/`` (see :mod:`deploy.provision`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from schemas.settings import Settings

JVM_HEAP = "-Xmx512m"
LISTEN_HOST = "127.0.0.1"
NODE_ID = 1


class KafkaSetupError(RuntimeError):
    """Writing the configuration or formatting the storage failed."""


def kafka_dir(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def server_properties(settings: Settings) -> dict[str, str]:
    broker = f"{LISTEN_HOST}:{settings.kafka_port}"
    controller = f"{LISTEN_HOST}:{settings.kafka_controller_port}"
    one = "1"
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{controller}",
        "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{broker}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(kafka_dir(settings) / "data"),
        "num.partitions": str(settings.topic_partitions),
        "default.replication.factor": one,
        "min.insync.replicas": one,
        "offsets.topic.replication.factor": one,
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": one,
        "transaction.state.log.min.isr": one,
        "share.coordinator.state.topic.replication.factor": one,
        "share.coordinator.state.topic.min.isr": one,
        "group.initial.rebalance.delay.ms": "0",
        # Mail up to max_message_bytes plus our envelope must fit in one record.
        "message.max.bytes": str(settings.max_record_bytes),
        "replica.fetch.max.bytes": str(settings.max_record_bytes),
    }


#: Loggers kept at INFO in the broker's log: start, state transitions and shutdown.
BROKER_INFO_LOGGERS = (
    "kafka.server.KafkaRaftServer",
    "kafka.server.BrokerServer",
    "kafka.server.ControllerServer",
)


def log4j_properties(target: str, level: str, info_loggers: tuple[str, ...] = ()) -> str:
    lines = [
        "status = warn",
        # Keep logging while the JVM shuts down, so that the broker's stop is in its log.
        "shutdownHook = disable",
        "appender.console.type = Console",
        "appender.console.name = console",
        f"appender.console.target = {target}",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = [%d] %p %m (%c)%n",
        f"rootLogger.level = {level}",
        "rootLogger.appenderRefs = console",
        "rootLogger.appenderRef.console.ref = console",
    ]
    for index, name in enumerate(info_loggers):
        lines += [f"logger.l{index}.name = {name}", f"logger.l{index}.level = info"]
    return "\n".join(lines) + "\n"


def _properties_text(values: dict[str, str]) -> str:
    header = "# Written by `tmpmail up` from TMPMAIL_* settings; edits are overwritten.\n"
    return header + "".join(f"{key}={value}\n" for key, value in values.items())


def write_config(settings: Settings) -> Path:
    """Write the broker's and the tools' configuration files; return server.properties."""
    directory = kafka_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    server = directory / "server.properties"
    server.write_text(_properties_text(server_properties(settings)))
    (directory / "log4j2.properties").write_text(
        log4j_properties("SYSTEM_OUT", "warn", BROKER_INFO_LOGGERS)
    )
    (directory / "log4j2-tools.properties").write_text(log4j_properties("SYSTEM_ERR", "warn"))
    return server


def java_command(settings: Settings, libs: Path, main_class: str, *args: str) -> list[str]:
    log4j = "log4j2.properties" if main_class == "kafka.Kafka" else "log4j2-tools.properties"
    return [
        "java",
        JVM_HEAP,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kafka_dir(settings) / log4j}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def broker_command(settings: Settings, libs: Path) -> list[str]:
    return java_command(
        settings, libs, "kafka.Kafka", str(kafka_dir(settings) / "server.properties")
    )


def is_formatted(settings: Settings) -> bool:
    return (kafka_dir(settings) / "data" / "meta.properties").exists()


def _run_tool(settings: Settings, libs: Path, *args: str) -> str:
    cmd = java_command(settings, libs, "kafka.tools.StorageTool", *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise KafkaSetupError(
            f"kafka StorageTool {args[0]} failed (exit {proc.returncode}):\n{tail}"
        )
    return proc.stdout.strip()


def ensure_formatted(settings: Settings, libs: Path) -> bool:
    """Format ``log.dirs`` with a new cluster id unless done before; return whether it ran."""
    if is_formatted(settings):
        return False
    cluster_id = _run_tool(settings, libs, "random-uuid")
    if not cluster_id or len(cluster_id.split()) != 1:
        raise KafkaSetupError(f"kafka StorageTool random-uuid printed {cluster_id!r}")
    server = kafka_dir(settings) / "server.properties"
    _run_tool(settings, libs, "format", "-t", cluster_id, "-c", str(server))
    return True
