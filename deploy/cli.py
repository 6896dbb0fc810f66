"""The ``tmpmail`` command: run the whole stack locally, or one service in the foreground.

    tmpmail up [--detach] [--store sqlite|mongodb] [--ingest N] [--streams N]
                                                     Kafka (+ FerretDB), topics, services
    tmpmail down                                     stop everything ``up`` started
    tmpmail status                                   one line per process; exit 0 if all run
    tmpmail ingest|streams [--index I] | api         one service in the foreground
    tmpmail topics                                   create the topics and exit
    tmpmail replay --from-beginning | --since T | --partition P --offset O
                   [--mailbox ADDRESS] [--dry-run]   reprocess raw mail from Kafka
    tmpmail health ingest|streams|api                exit 0 if that service is ready here

Configuration comes only from ``TMPMAIL_*`` variables (see :mod:`schemas.settings`).
Run it as ``tmpmail ...`` or ``python -m deploy.cli ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from deploy import health
from deploy.launcher import Launcher, LaunchError
from schemas.settings import Settings, load_settings, too_many_streams_processes

Command = Callable[[argparse.Namespace, Settings], int]

DEFAULT_READY_TIMEOUT_S = 120.0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    store = args.store or settings.store
    if args.ingest is not None:
        settings = settings.model_copy(update={"ingest_processes": args.ingest})
    if args.streams is not None:
        too_many = too_many_streams_processes(args.streams, settings.topic_partitions)
        if too_many:
            raise LaunchError(f"--streams {args.streams}: {too_many}")
        settings = settings.model_copy(update={"streams_processes": args.streams})
    return Launcher(settings).up(store=store, detach=args.detach, timeout_s=args.timeout)


def _down(args: argparse.Namespace, settings: Settings) -> int:
    return Launcher(settings).down()


def _status(args: argparse.Namespace, settings: Settings) -> int:
    return Launcher(settings).status()


def _check_index(index: int, processes: int, variable: str, what: str) -> None:
    if index >= processes:
        raise LaunchError(
            f"--index {index} is not below {variable} ({processes}): {what} are numbered "
            f"0 .. {processes - 1}."
        )


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    _check_index(
        args.index,
        settings.ingest_processes,
        "TMPMAIL_INGEST_PROCESSES",
        "the processes sharing the port",
    )
    from ingest.main import run

    run(settings, index=args.index)
    return 0


def _streams(args: argparse.Namespace, settings: Settings) -> int:
    _check_index(args.index, settings.streams_processes, "TMPMAIL_STREAMS_PROCESSES", "the workers")
    from bus.admin import TopicError
    from streams.main import run

    settings.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        run(settings, index=args.index)
    except TopicError as exc:  # Kafka unreachable: say so in one line, not a traceback
        raise LaunchError(str(exc)) from exc
    return 0


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from api.main import run

    run(settings)
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from bus.admin import TopicError, ensure_topics

    try:
        ensure_topics(settings)
    except TopicError as exc:
        raise LaunchError(str(exc)) from exc
    print(f"tmpmail: topics ready on {settings.kafka_bootstrap}")
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from schemas.logs import configure_logging
    from schemas.runtime import loop_factory
    from streams.replay import SWITCH_INTERVAL_S, ReplayError, ReplaySpec, parse_since, replay

    configure_logging("replay", "WARNING")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        spec = ReplaySpec(
            from_beginning=args.from_beginning,
            since=parse_since(args.since) if args.since else None,
            partition=args.partition,
            offset=args.offset,
            mailbox=args.mailbox,
            dry_run=args.dry_run,
        )
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            counts = runner.run(replay(settings, spec))
    except ReplayError as exc:
        raise LaunchError(f"replay: {exc}") from exc
    return 1 if counts.errors else 0


def _ingest_ready(settings: Settings) -> bool:
    """Every ingest process that ``up`` started here (or TMPMAIL_INGEST_PROCESSES of them,
    as compose runs one per container) is ready, and the port answers EHLO."""
    return health.ingest_ready(settings, Launcher(settings).recorded_plan().ingest_processes)


def _streams_ready(settings: Settings) -> bool:
    """Every streams worker that ``up`` started here (or TMPMAIL_STREAMS_PROCESSES of them;
    compose runs one per container, index 0) has its partitions and its table."""
    return health.streams_ready(settings, Launcher(settings).recorded_plan().streams_processes)


def _health(args: argparse.Namespace, settings: Settings) -> int:
    probes: dict[str, Callable[[Settings], bool]] = {
        "ingest": _ingest_ready,
        "streams": _streams_ready,
        "api": health.api_ready,
    }
    ready = probes[args.service](settings)
    print(f"{args.service}: {'ready' if ready else 'not ready'}")
    return 0 if ready else 1


def _setting_bounds(field: str) -> tuple[int, int | None]:
    """The ``ge`` and ``le`` bounds of setting ``field`` (no upper bound: None)."""
    rules = Settings.model_fields[field].metadata
    low = next((int(rule.ge) for rule in rules if hasattr(rule, "ge")), 0)
    high = next((int(rule.le) for rule in rules if hasattr(rule, "le")), None)
    return low, high


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (or any above ``low``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tmpmail",
        description="Temporary email on Kafka. Configure with TMPMAIL_* variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="provision and start Kafka, the store and the services")
    up.add_argument("--detach", "-d", action="store_true", help="return once everything is ready")
    up.add_argument(
        "--store", choices=["sqlite", "mongodb"], help="storage backend (default: TMPMAIL_STORE)"
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_READY_TIMEOUT_S,
        help="seconds each service may take to become ready (default: %(default)s)",
    )
    up.add_argument(
        "--ingest",
        type=_whole_number(*_setting_bounds("ingest_processes")),
        metavar="N",
        help="ingest processes sharing the SMTP port (default: TMPMAIL_INGEST_PROCESSES)",
    )
    up.add_argument(
        "--streams",
        type=_whole_number(*_setting_bounds("streams_processes")),
        metavar="N",
        help="streams workers splitting the raw-mail partitions, at most "
        "TMPMAIL_TOPIC_PARTITIONS (default: TMPMAIL_STREAMS_PROCESSES)",
    )
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop everything `up` started").set_defaults(func=_down)
    sub.add_parser("status", help="show our processes; exit 0 if all run").set_defaults(
        func=_status
    )
    for name, func, what, which in (
        (
            "ingest",
            _ingest,
            "the SMTP server",
            "TMPMAIL_INGEST_PROCESSES processes sharing the port",
        ),
        ("streams", _streams, "the Faust stream processor", "TMPMAIL_STREAMS_PROCESSES workers"),
    ):
        service = sub.add_parser(name, help=f"run {what} in the foreground")
        service.add_argument(
            "--index",
            type=_whole_number(0),
            default=0,
            metavar="I",
            help=f"which of the {which} this is (0 .. N-1; default: %(default)s)",
        )
        service.set_defaults(func=func)
    sub.add_parser("api", help="run the HTTP API and live events in the foreground").set_defaults(
        func=_api
    )
    sub.add_parser("topics", help="create the Kafka topics and exit").set_defaults(func=_topics)
    again = sub.add_parser(
        "replay",
        help="reprocess raw mail from Kafka into the store (idempotent)",
        description="Reads tmpmail.raw-mail.v1 with a consumer of its own and stores what "
        "is missing, re-parses what an older parser stored, and leaves deleted mail deleted. "
        "Running it twice changes nothing the second time.",
    )
    start = again.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-beginning", action="store_true", help="all raw mail kept")
    start.add_argument("--since", metavar="T", help="ISO time (2026-12-01T10:00Z) or 2h / 3d")
    start.add_argument("--partition", type=int, metavar="P", help="one partition, with --offset")
    again.add_argument("--offset", type=int, metavar="O", help="start offset in --partition")
    again.add_argument("--mailbox", metavar="ADDRESS", help="only this mailbox's mail")
    again.add_argument("--dry-run", action="store_true", help="read and count, write nothing")
    again.set_defaults(func=_replay)
    check = sub.add_parser("health", help="exit 0 if a service on this host is ready")
    check.add_argument("service", choices=["ingest", "streams", "api"])
    check.set_defaults(func=_health)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    command: Command = args.func
    try:
        return command(args, settings)
    except LaunchError as exc:
        print(f"tmpmail: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tmpmail: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
