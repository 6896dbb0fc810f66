"""The worker's Faust monitor keeps no per-message bookkeeping (pure: no broker)."""

from types import SimpleNamespace

from faust.types import TP

from schemas.settings import Settings
from streams.app import QuietMonitor, build_app


def test_the_worker_runs_the_quiet_monitor() -> None:
    app = build_app(Settings(topic_partitions=6), store=None, producer=None)  # type: ignore[arg-type]
    assert app.conf.Monitor is QuietMonitor
    assert isinstance(app.monitor, QuietMonitor)


def test_per_message_hooks_record_nothing() -> None:
    monitor = QuietMonitor()
    tp = TP("tmpmail.raw-mail.v1", 0)
    message = SimpleNamespace(time_in=None, tp=tp)
    stream = SimpleNamespace(task_owner=None)
    for offset in range(100):
        monitor.on_message_in(tp, offset, message)  # type: ignore[arg-type]
        state = monitor.on_stream_event_in(tp, offset, stream, message)  # type: ignore[arg-type]
        monitor.on_stream_event_out(tp, offset, stream, message, state)  # type: ignore[arg-type]
        monitor.on_message_out(tp, offset, message)  # type: ignore[arg-type]
    assert state is None and message.time_in is None
    assert monitor.messages_received_total == 0 and monitor.events_total == 0
    assert not monitor.tp_read_offsets and not monitor.events_runtime
    # Rare events are still counted, as Faust's own monitor does.
    monitor.on_send_error(None, RuntimeError("x"), None)  # type: ignore[arg-type]
    assert monitor.send_errors == 1
