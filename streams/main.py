"""The streams process: one Faust worker that parses, looks up, stores and delivers.

Run it with ``tmpmail streams`` (foreground; what compose and production run). It opens
the store, starts the worker with Faust's web server off, and stops cleanly on SIGTERM
or SIGINT (Faust's own signal handling), closing the store last.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from schemas.logs import configure_logging
from schemas.settings import Settings
from store import MailStore, create_store
from streams.app import build_app

log = logging.getLogger("tmpmail.streams")


class _Worker(faust.Worker):
    """Faust's worker, closing our store and readiness file when it stops."""

    def __init__(self, *args: object, store: MailStore, settings: Settings, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.spinner = None  # a terminal spinner only writes escape codes into our log
        self._store = store
        self._settings = settings

    async def on_stop(self) -> None:
        await super().on_stop()
        (self._settings.run_dir / "streams.ready").unlink(missing_ok=True)
        await self._store.close()
        log.info("streams stopped")


def run(settings: Settings) -> None:
    """Blocking entry point: run the worker until SIGTERM/SIGINT."""
    configure_logging("streams", settings.log_level)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / "streams.ready").unlink(missing_ok=True)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    store = create_store(settings)
    loop.run_until_complete(store.open())
    app = build_app(settings, store)
    worker = _Worker(
        app,
        store=store,
        settings=settings,
        loop=loop,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
