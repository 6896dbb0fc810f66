"""The API process: REST, live events (SSE) and the web inbox (at /).

Run it with ``tmpmail api`` (foreground; what compose and production run). It serves
``TMPMAIL_HTTP_HOST:TMPMAIL_HTTP_PORT`` with uvicorn and stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import gc
import logging
import socket
import time

import uvicorn

from api.app import create_app
from schemas.logs import configure_logging
from schemas.settings import Settings

log = logging.getLogger("tmpmail.api")


def run(settings: Settings) -> None:
    """Blocking entry point: serve until SIGTERM/SIGINT."""
    configure_logging("api", settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        http="httptools",  # a dependency; its writes are cheaper than h11's (bench/fanout)
        lifespan="on",
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    sock = config.bind_socket()
    reap_stalled_connections(sock, settings.sse_send_timeout_s)
    tune_gc()
    uvicorn.Server(config).run(sockets=[sock])


#: Allocations between two young collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer, larger young collections, and the start-up heap out of the collector's way.

    Each open live stream holds a few hundred tracked objects, so thousands of streams
    make a heap of millions; a full collection of that heap stalls every stream for
    seconds (``bench/fanout.py``). A full collection runs once the objects that survived
    the young generations grow by a quarter. With CPython's default of 700, the
    short-lived objects of a burst of deliveries (events queued, sends in flight) live
    through a young collection and count towards that quarter; with a larger threshold
    most are freed by reference counting first. ``gc.freeze()`` moves what start-up made
    (modules, classes, the app) to a generation that is never scanned.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    gc.callbacks.append(_time_collections)


#: A collection that stalls every live stream this long is logged as a warning; any full
#: collection is logged at INFO.
GC_STALL_WARN_S = 0.1
_gc_started = 0.0


def _time_collections(phase: str, info: dict[str, int]) -> None:
    """Log each full collection, and any collection that stalled the streams long."""
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
        return
    took = time.perf_counter() - _gc_started
    generation = info.get("generation", -1)
    if took < GC_STALL_WARN_S and generation != 2:
        return
    log.log(
        logging.WARNING if took >= GC_STALL_WARN_S else logging.INFO,
        "garbage collection of generation %d: %.0f ms (%d objects collected); every live "
        "stream waited",
        generation,
        took * 1000,
        info.get("collected", 0),
    )


def reap_stalled_connections(sock: socket.socket, after_s: float) -> None:
    """Let the kernel reset a connection whose peer acknowledged nothing for ``after_s``.

    When a live stream's send times out, uvicorn closes the connection gracefully, and a
    graceful close waits for the buffered bytes to flush: a client that never reads
    again would keep its socket and its send buffer here for ever. ``TCP_USER_TIMEOUT``
    on the listening socket is inherited by every accepted one (Linux), and it also
    covers a window that stays shut (zero-window probes). Only a peer that stalls that
    long is cut; a slow reader keeps acknowledging.
    """
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(after_s * 1000)))
