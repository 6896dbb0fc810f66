"""The streams worker's local state belongs to one Kafka cluster.

Faust keeps its local state (table data, and offsets once a RocksDB store is used) under
``<state>/streams`` (worker 0) or ``<state>/streams-<i>`` (worker ``i`` of several): a
RocksDB database is opened by one process at a time. That state describes the topics of
one cluster: once the broker has been formatted anew, it has a new cluster id and none
of those offsets exist any more. :func:`claim_state_dir` keeps a marker,
``<dir>/CLUSTER_ID``, and starts the directory afresh whenever the marker is missing or
names another cluster.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from schemas.settings import Settings

MARKER = "CLUSTER_ID"


def streams_state_dir(settings: Settings, index: int = 0) -> Path:
    """The ``datadir`` of Faust worker ``index`` (worker 0 keeps the single worker's)."""
    return settings.state_dir / ("streams" if index == 0 else f"streams-{index}")


def claim_state_dir(path: Path, cluster_id: str) -> bool:
    """Make ``path`` the state directory of the cluster ``cluster_id``; return whether it wiped.

    If ``<path>/CLUSTER_ID`` names ``cluster_id``, nothing changes. Otherwise everything
    under ``path`` is removed (the directory is created if missing) and the marker is
    written last, so that a wipe cut short is done again next time. Returns True if
    anything was removed.
    """
    if not cluster_id or cluster_id != cluster_id.strip() or "\n" in cluster_id:
        raise ValueError(f"not a Kafka cluster id: {cluster_id!r}")
    marker = path / MARKER
    try:
        if marker.read_text(encoding="utf-8").strip() == cluster_id:
            return False
    except (FileNotFoundError, NotADirectoryError):
        pass
    wiped = _remove(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(MARKER + ".tmp")
    tmp.write_text(cluster_id + "\n", encoding="utf-8")
    os.replace(tmp, marker)
    return wiped


def _remove(path: Path) -> bool:
    """Empty the directory ``path`` (or remove what else is there); return whether it held any."""
    if not path.is_dir():
        if path.exists() or path.is_symlink():
            path.unlink()
            return True
        return False
    removed = False
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed = True
    return removed
