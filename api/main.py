"""The API process: REST, live events (SSE) and, later, the web inbox.

Run it with ``tmpmail api`` (foreground; what compose and production run). It serves
``TMPMAIL_HTTP_HOST:TMPMAIL_HTTP_PORT`` with uvicorn and stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import uvicorn

from api.app import create_app
from schemas.logs import configure_logging
from schemas.settings import Settings


def run(settings: Settings) -> None:
    """Blocking entry point: serve until SIGTERM/SIGINT."""
    configure_logging("api", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
