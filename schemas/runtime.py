"""What every tmpmail process does alike: its event loop, and its readiness file."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is installed (it is, by ``make install``), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def write_ready_file(path: Path, record: dict[str, object]) -> None:
    """Write ``record`` as JSON to ``path`` atomically (readers never see half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)
