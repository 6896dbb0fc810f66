"""The streams process: one Faust worker that parses, looks up, stores and delivers.

Run it with ``tmpmail streams [--index I]`` (foreground; what compose and production
run). Several workers (``TMPMAIL_STREAMS_PROCESSES``) form one consumer group and split
the raw-mail partitions; ``I`` names the worker's state directory and ready file. It claims
its local state directory for the broker's cluster (:mod:`streams.state`), opens the
store, starts the worker with Faust's web server off, and stops cleanly on SIGTERM
or SIGINT (Faust's own signal handling), closing the store last.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from bus import AsyncProducer, cluster_id, producer_config
from schemas.logs import configure_logging
from schemas.runtime import loop_factory
from schemas.settings import Settings
from store import MailStore, create_store
from streams.app import build_app
from streams.state import claim_state_dir, streams_state_dir

log = logging.getLogger("tmpmail.streams")


class _Worker(faust.Worker):
    """Faust's worker, closing our producer, store and readiness file when it stops."""

    def __init__(
        self,
        *args: object,
        store: MailStore,
        producer: AsyncProducer,
        settings: Settings,
        index: int,
        **kw: object,
    ) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.spinner = None  # a terminal spinner only writes escape codes into our log
        self._store = store
        self._producer = producer
        self._settings = settings
        self._index = index

    async def on_stop(self) -> None:
        await super().on_stop()
        self._settings.streams_ready_file(self._index).unlink(missing_ok=True)
        await self._producer.stop()
        await self._store.close()
        log.info("streams stopped")


def run(settings: Settings, index: int = 0) -> None:
    """Blocking entry point: run worker ``index`` until SIGTERM/SIGINT."""
    configure_logging("streams", settings.log_level)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.streams_ready_file(index).unlink(missing_ok=True)
    kafka_cluster, state_dir = cluster_id(settings), streams_state_dir(settings, index)
    if claim_state_dir(state_dir, kafka_cluster):
        log.info("new Kafka cluster %s: wiped the local state in %s", kafka_cluster, state_dir)
    loop = loop_factory()()
    asyncio.set_event_loop(loop)
    store = create_store(settings)
    loop.run_until_complete(store.open())
    producer = AsyncProducer(producer_config(settings))
    loop.run_until_complete(producer.start())
    app = build_app(settings, store, producer, index)
    worker = _Worker(
        app,
        store=store,
        producer=producer,
        settings=settings,
        index=index,
        loop=loop,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
