"""The ingest process: an SMTP server that only accepts mail and publishes it raw to Kafka.

Run it with ``tmpmail ingest`` (foreground; what compose and production run). It listens
on ``TMPMAIL_SMTP_HOST:TMPMAIL_SMTP_PORT`` and stops cleanly on SIGTERM or SIGINT:
it stops accepting, lets open transactions finish, and flushes the producer.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiosmtpd.smtp import SMTP

from bus import AsyncProducer, producer_config
from ingest.handler import KafkaRawMailSink, RawMailHandler
from schemas.logs import configure_logging
from schemas.runtime import loop_factory
from schemas.settings import Settings

log = logging.getLogger("tmpmail.ingest")

#: Seconds an idle client may keep a connection (RFC 5321 suggests minutes per command).
SMTP_TIMEOUT_S = 300


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Wire the producer, the handler and the server; serve until ``stop`` is set."""
    producer = AsyncProducer(producer_config(settings))
    await producer.start()
    handler = RawMailHandler(
        KafkaRawMailSink(producer, settings.produce_timeout_s + 5),
        domains=settings.domains,
        hostname=settings.hostname,
    )

    def make_session() -> SMTP:
        return SMTP(
            handler,
            hostname=settings.hostname,
            ident="tmpmail",
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=SMTP_TIMEOUT_S,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        make_session, host=settings.smtp_host, port=settings.smtp_port, reuse_address=True
    )
    log.info(
        "SMTP listening on %s:%d for %s",
        settings.smtp_host,
        settings.smtp_port,
        ", ".join(settings.domains),
    )
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await producer.stop()
        log.info("ingest stopped")


def run(settings: Settings) -> None:
    """Blocking entry point: serve until SIGTERM/SIGINT."""
    configure_logging("ingest", settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
