"""The ingest process: an SMTP server that only accepts mail and publishes it raw to Kafka.

The server is :mod:`ingest.smtp` (our own protocol); its hooks are :mod:`ingest.handler`.

Run it with ``tmpmail ingest`` (foreground; what compose and production run). It listens
on ``TMPMAIL_SMTP_HOST:TMPMAIL_SMTP_PORT`` and stops cleanly on SIGTERM or SIGINT:
it stops accepting, lets open transactions finish, and flushes the producer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl

from bus import AsyncProducer, producer_config
from ingest.handler import KafkaRawMailSink, RawMailHandler
from ingest.smtp import SmtpLimits, SmtpServer
from schemas.logs import configure_logging
from schemas.runtime import loop_factory, write_ready_file
from schemas.settings import Settings

log = logging.getLogger("tmpmail.ingest")

#: On stop, how long open mail transactions may take to finish before sessions get 421.
DRAIN_S = 10.0


def smtp_limits(settings: Settings) -> SmtpLimits:
    return SmtpLimits(
        max_message_bytes=settings.max_message_bytes,
        max_recipients=settings.smtp_max_recipients,
        recipient_budget_bytes=settings.smtp_recipient_budget_bytes,
        max_command_bytes=settings.smtp_max_command_bytes,
        max_bad_commands=settings.smtp_max_bad_commands,
        max_connections=settings.smtp_max_connections,
        max_connections_per_client=settings.smtp_max_connections_per_client,
        idle_timeout_s=settings.smtp_idle_timeout_s,
        data_timeout_s=settings.smtp_data_timeout_s,
    )


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context, when ``TMPMAIL_SMTP_TLS_CERT`` and ``_KEY`` are set."""
    if settings.smtp_tls_cert is None or settings.smtp_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key)
    return context


async def serve(settings: Settings, stop: asyncio.Event, index: int = 0) -> None:
    """Wire the producer, the handler and the server; serve until ``stop`` is set."""
    context = tls_context(settings)
    producer = AsyncProducer(producer_config(settings))
    await producer.start()
    busy = None
    if settings.ingest_busy_linger_ms > 0:
        busy = AsyncProducer(
            producer_config(settings, **{"linger.ms": settings.ingest_busy_linger_ms})
        )
        await busy.start()
    sink = KafkaRawMailSink(
        producer, settings.produce_timeout_s + 5, busy=busy, busy_at=settings.ingest_busy_in_flight
    )
    handler = RawMailHandler(
        sink,
        domains=settings.domains,
        hostname=settings.hostname,
        max_recipients=settings.smtp_max_recipients,
        recipient_budget_bytes=settings.smtp_recipient_budget_bytes,
    )
    smtp = SmtpServer(
        handler,
        hostname=settings.hostname,
        domains=settings.domains,
        limits=smtp_limits(settings),
        tls_context=context,
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        smtp,
        host=settings.smtp_host,
        port=settings.smtp_port,
        reuse_address=True,
        reuse_port=True,  # several ingest processes share the port (TMPMAIL_INGEST_PROCESSES)
        backlog=1024,
    )
    smtp.start(loop)
    log.info(
        "SMTP listening on %s:%d for %s (process %d%s)",
        settings.smtp_host,
        settings.smtp_port,
        ", ".join(settings.domains),
        index,
        ", STARTTLS" if context else "",
    )
    ready_file = settings.ingest_ready_file(index)
    write_ready_file(ready_file, {"pid": os.getpid(), "index": index})
    try:
        await stop.wait()
    finally:
        ready_file.unlink(missing_ok=True)
        server.close()
        await smtp.drain(DRAIN_S)
        smtp.stop()
        smtp.close_all()
        await server.wait_closed()
        if busy is not None:
            await busy.stop()
        await producer.stop()
        log.info("ingest stopped: %s", smtp.counters.snapshot())


def run(settings: Settings, index: int = 0) -> None:
    """Blocking entry point: serve until SIGTERM/SIGINT. ``index`` tells apart the
    processes that share the port (0 .. TMPMAIL_INGEST_PROCESSES - 1)."""
    configure_logging("ingest", settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop, index)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
