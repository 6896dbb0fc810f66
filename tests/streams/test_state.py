"""The streams state directory belongs to one Kafka cluster (streams/state.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from streams.state import MARKER, claim_state_dir, streams_state_dir

OLD, NEW = "OldClusterId0000000000", "NewClusterId1111111111"


def _plant(state: Path, marker: str | None) -> None:
    (state / "v1" / "tables").mkdir(parents=True)
    (state / "v1" / "tables" / "stale.offsets").write_text("offsets")
    (state / "loose-file").write_text("x")
    if marker is not None:
        (state / MARKER).write_text(marker + "\n")


def test_a_missing_directory_is_created_and_claimed(tmp_path: Path) -> None:
    state = tmp_path / "streams"
    assert claim_state_dir(state, NEW) is False  # nothing to wipe
    assert (state / MARKER).read_text().strip() == NEW
    assert [p.name for p in state.iterdir()] == [MARKER]


def test_state_of_the_same_cluster_is_kept(tmp_path: Path) -> None:
    state = tmp_path / "streams"
    _plant(state, NEW)
    assert claim_state_dir(state, NEW) is False
    assert (state / "v1" / "tables" / "stale.offsets").exists()
    assert (state / "loose-file").exists()


@pytest.mark.parametrize("marker", [OLD, None], ids=["other-cluster", "no-marker"])
def test_state_of_another_cluster_or_of_none_is_wiped(tmp_path: Path, marker: str | None) -> None:
    state = tmp_path / "streams"
    _plant(state, marker)
    outside = tmp_path / "outside"
    outside.mkdir()
    (state / "link").symlink_to(outside, target_is_directory=True)
    assert claim_state_dir(state, NEW) is True
    assert sorted(p.name for p in state.iterdir()) == [MARKER]
    assert (state / MARKER).read_text().strip() == NEW
    assert outside.exists(), "a symlink is removed, not followed"
    assert claim_state_dir(state, NEW) is False  # claimed now


def test_a_file_in_place_of_the_directory_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "streams"
    state.write_text("not a directory")
    assert claim_state_dir(state, NEW) is True
    assert (state / MARKER).read_text().strip() == NEW


@pytest.mark.parametrize("bad", ["", " padded ", "two\nlines"])
def test_a_malformed_cluster_id_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="cluster id"):
        claim_state_dir(tmp_path / "streams", bad)
    assert not (tmp_path / "streams").exists()


def test_the_state_dir_is_fausts_datadir(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert streams_state_dir(settings) == tmp_path.resolve() / "streams"
