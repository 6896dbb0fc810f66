"""The log line shape shared by every process: one line per record, to stderr."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s {service}[%(process)d] %(name)s: %(message)s"


def configure_logging(service: str, level: str = "INFO") -> None:
    """Log to stderr (the launcher sends it to ``<state>/logs/<service>.log``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT.format(service=service)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "mode", "faust", "mail.log"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level.upper()), logging.WARNING))
