"""The ``tmpmail`` command: run the whole stack locally, or one service in the foreground.

    tmpmail up [--detach] [--store sqlite|mongodb]   Kafka (+ FerretDB), topics, services
    tmpmail down                                     stop everything ``up`` started
    tmpmail status                                   one line per process; exit 0 if all run
    tmpmail ingest | streams | api                   one service in the foreground
    tmpmail topics                                   create the topics and exit
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
from schemas.settings import Settings, load_settings

Command = Callable[[argparse.Namespace, Settings], int]

DEFAULT_READY_TIMEOUT_S = 120.0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    store = args.store or settings.store
    return Launcher(settings).up(store=store, detach=args.detach, timeout_s=args.timeout)


def _down(args: argparse.Namespace, settings: Settings) -> int:
    return Launcher(settings).down()


def _status(args: argparse.Namespace, settings: Settings) -> int:
    return Launcher(settings).status()


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.main import run

    run(settings)
    return 0


def _streams(args: argparse.Namespace, settings: Settings) -> int:
    from bus.admin import TopicError
    from streams.main import run

    settings.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        run(settings)
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


def _health(args: argparse.Namespace, settings: Settings) -> int:
    probes: dict[str, Callable[[Settings], bool]] = {
        "ingest": health.smtp_ready,
        "streams": health.streams_ready,
        "api": health.api_ready,
    }
    ready = probes[args.service](settings)
    print(f"{args.service}: {'ready' if ready else 'not ready'}")
    return 0 if ready else 1


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
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop everything `up` started").set_defaults(func=_down)
    sub.add_parser("status", help="show our processes; exit 0 if all run").set_defaults(
        func=_status
    )
    for name, func, what in (
        ("ingest", _ingest, "the SMTP server"),
        ("streams", _streams, "the Faust stream processor"),
        ("api", _api, "the HTTP API and live events"),
    ):
        sub.add_parser(name, help=f"run {what} in the foreground").set_defaults(func=func)
    sub.add_parser("topics", help="create the Kafka topics and exit").set_defaults(func=_topics)
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
