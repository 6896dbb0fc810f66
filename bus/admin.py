"""Topic creation: every topic, with its partition count and config, before any worker starts.

A broker that has just opened its port may not have registered itself yet, and one that
has just created a topic may not have its partitions (and their leaders) in its metadata
yet. Every function here therefore polls the broker's metadata until it has settled, all
within one deadline, and says what it was waiting for when the deadline passes.

On a new cluster, the broker creates ``__consumer_offsets`` only when a client first asks
for a group coordinator; :func:`ensure_topics` asks, so that the workers' first joins
find one instead of logging "coordinator not available" and retrying.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic, TopicMetadata

from bus.config import client_config
from schemas.settings import Settings
from schemas.topics import TopicSpec, topic_specs

log = logging.getLogger(__name__)

#: Pause between two metadata requests while waiting for the broker to settle.
POLL_S = 0.15
#: Longest a single metadata request may take; the whole wait is bounded by ``timeout_s``.
REQUEST_TIMEOUT_S = 5.0
#: Kafka's group coordinator keeps its state here; created on a new cluster's first request.
OFFSETS_TOPIC = "__consumer_offsets"
#: A group nobody joins, only asked about, to find out whether a coordinator answers.
COORDINATOR_PROBE_GROUP = "tmpmail-coordinator-probe"
_COORDINATOR_STARTING = (
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_COORDINATOR,
)


class TopicError(RuntimeError):
    """Kafka is unreachable, or a topic is missing, unsettled or wrongly partitioned."""


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics of :func:`schemas.topics.topic_specs`; return those created.

    Returns once the broker's metadata shows every topic with all its partitions, each
    with a leader. Existing topics are checked: a partition count other than the spec's
    would break co-partitioning, so it is an error that names the topic. Everything,
    waiting for a broker that is still starting and for its group coordinator included,
    happens within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    specs = topic_specs(settings)
    admin = _admin(settings)
    existing = _registered_metadata(admin, settings, deadline, timeout_s).topics
    created = _create_topics(admin, [spec for spec in specs if spec.name not in existing], deadline)
    if created:
        log.info("created topics %s", created)
    wanted: dict[str, int | None] = {
        spec.name: spec.partitions if spec.name in created else None for spec in specs
    }
    if _group_coordinator_answers(admin, deadline):
        wanted[OFFSETS_TOPIC] = None
    metadata = _settled_metadata(admin, settings, wanted, deadline, timeout_s)
    for spec in specs:
        count = len(metadata.topics[spec.name].partitions)
        if count != spec.partitions:
            raise TopicError(
                f"topic {spec.name} has {count} partitions, expected {spec.partitions}: "
                "co-partitioning needs the same count everywhere (TMPMAIL_TOPIC_PARTITIONS)"
            )
    return created


def cluster_id(settings: Settings, timeout_s: float = 30.0) -> str:
    """The id of the Kafka cluster at ``settings.kafka_bootstrap`` (new on every format)."""
    deadline = time.monotonic() + timeout_s
    metadata = _registered_metadata(_admin(settings), settings, deadline, timeout_s)
    if not metadata.cluster_id:
        raise TopicError(f"Kafka at {settings.kafka_bootstrap} reports no cluster id")
    return str(metadata.cluster_id)


def broker_registered(settings: Settings, timeout_s: float = 2.0) -> bool:
    """One probe: a broker answers metadata requests and lists itself (never raises).

    An open port is not enough: a broker that has not registered with its controller
    answers with no brokers, and cannot create a topic with even one replica.
    """
    try:
        metadata = _admin(settings).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return _has_broker(metadata)


# --- waiting for the broker ----------------------------------------------------------


def _admin(settings: Settings) -> AdminClient:
    # librdkafka would log every failed connection attempt; the error we raise says it once.
    # Its reconnect back-off grows to 10 s by default: too slow for a broker still starting.
    return AdminClient(client_config(settings, log_level=0, **{"reconnect.backoff.max.ms": 500}))


def _remaining(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def _has_broker(metadata: ClusterMetadata) -> bool:
    return bool(metadata.brokers) and metadata.controller_id >= 0


def _registered_metadata(
    admin: AdminClient, settings: Settings, deadline: float, timeout_s: float
) -> ClusterMetadata:
    """Metadata from a broker that has registered, so that it can create topics."""
    answered = False
    reason = "no answer"
    while True:
        try:
            metadata = admin.list_topics(timeout=min(REQUEST_TIMEOUT_S, _remaining(deadline)))
        except KafkaException as exc:
            reason = exc.args[0].str()
        else:
            if _has_broker(metadata):
                return metadata
            answered = True
            reason = "it lists no registered broker"
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    if not answered:
        raise TopicError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({reason}): "
            "start it with `tmpmail up`, or set TMPMAIL_KAFKA_BOOTSTRAP"
        )
    raise TopicError(
        f"Kafka at {settings.kafka_bootstrap} answers, but {reason} after {timeout_s:.0f}s: "
        "the broker has not finished starting; check its log for errors "
        "(`tmpmail status` shows where it is)"
    )


def _create_topics(admin: AdminClient, specs: list[TopicSpec], deadline: float) -> list[str]:
    """Create ``specs``, retrying retriable errors until ``deadline``; return those created."""
    created: list[str] = []
    pending = specs
    while pending:
        timeout = _remaining(deadline)
        futures = admin.create_topics(
            [_new_topic(spec) for spec in pending],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        retry: list[TopicSpec] = []
        for spec in pending:
            try:
                futures[spec.name].result(timeout=timeout + REQUEST_TIMEOUT_S)
            except concurrent.futures.TimeoutError as exc:
                raise TopicError(f"creating topic {spec.name} did not finish in time") from exc
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # created meanwhile, by an earlier attempt or by someone else
                if error.retriable() and time.monotonic() < deadline:
                    retry.append(spec)
                    continue
                raise TopicError(f"cannot create topic {spec.name}: {error.str()}") from exc
            created.append(spec.name)
        pending = retry
        if pending:
            time.sleep(POLL_S)
    return created


def _group_coordinator_answers(admin: AdminClient, deadline: float) -> bool:
    """Ask for a group's coordinator until one answers; return whether one did.

    On a new cluster the first such request makes the broker create ``__consumer_offsets``;
    until it has, a consumer is told that no coordinator is available (aiokafka logs that
    as an error) and retries. A broker that refuses the probe (an ACL, say) is no reason
    to fail: the workers will find their coordinators, just later.
    """
    while True:
        future = admin.describe_consumer_groups(
            [COORDINATOR_PROBE_GROUP], request_timeout=min(REQUEST_TIMEOUT_S, _remaining(deadline))
        )[COORDINATOR_PROBE_GROUP]
        try:
            future.result(timeout=REQUEST_TIMEOUT_S * 2)
            return True
        except concurrent.futures.TimeoutError:
            error_text = "no answer"
            retriable = True
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return True  # answered by the group's coordinator
            error_text = error.str()
            retriable = error.retriable() or error.code() in _COORDINATOR_STARTING
        if not retriable or time.monotonic() >= deadline:
            log.warning("no group coordinator yet (%s); consumers will retry", error_text)
            return False
        time.sleep(POLL_S)


def _settled_metadata(
    admin: AdminClient,
    settings: Settings,
    wanted: dict[str, int | None],
    deadline: float,
    timeout_s: float,
) -> ClusterMetadata:
    """Metadata in which every topic of ``wanted`` has all its partitions, each with a leader.

    ``wanted`` maps a topic to its partition count, or to None where any count will do.
    """
    while True:
        try:
            metadata = admin.list_topics(timeout=min(REQUEST_TIMEOUT_S, _remaining(deadline)))
        except KafkaException as exc:
            unsettled = [f"no metadata: {exc.args[0].str()}"]
        else:
            unsettled = [
                f"{name}: {why}"
                for name, count in wanted.items()
                if (why := _unsettled(metadata.topics.get(name), count)) is not None
            ]
            if not unsettled:
                return metadata
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    listed = "; ".join(unsettled)
    raise TopicError(
        f"topics not ready on Kafka at {settings.kafka_bootstrap} after {timeout_s:.0f}s "
        f"({listed}): check the broker's log for errors and its disk space, "
        "then retry with `tmpmail topics`"
    )


def _unsettled(topic: TopicMetadata | None, want: int | None) -> str | None:
    """Why ``topic`` is not settled yet, or None if it is.

    Settled: no error, partitions ``0..n-1`` (``n == want`` for a topic we have just
    created), each with a leader and no error.
    """
    if topic is None:
        return "not in the metadata yet"
    if topic.error is not None:
        return str(topic.error.str())
    count = len(topic.partitions)
    expected = want if want is not None else count
    if count == 0 or sorted(topic.partitions) != list(range(expected)):
        return f"{count} of {expected or '?'} partitions"
    leaderless = sorted(
        pid for pid, part in topic.partitions.items() if part.leader < 0 or part.error is not None
    )
    if leaderless:
        return f"partitions {leaderless} have no leader yet"
    return None


def _new_topic(spec: TopicSpec) -> NewTopic:
    return NewTopic(
        spec.name, num_partitions=spec.partitions, replication_factor=-1, config=dict(spec.config)
    )
