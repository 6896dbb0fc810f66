"""The API process's start-up tuning: its GC policy and the log of collections that stall."""

from __future__ import annotations

import gc
import logging
import time

import pytest

from api import main


def test_a_collection_that_stalls_the_streams_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tmpmail.api")
    main._time_collections("start", {"generation": 1})
    main._time_collections("stop", {"generation": 1, "collected": 3})
    assert caplog.records == []  # a quick young collection: nothing to say

    main._time_collections("start", {"generation": 2})
    main._time_collections("stop", {"generation": 2, "collected": 0})
    assert [r.levelno for r in caplog.records] == [logging.INFO]  # every full one, quietly

    main._time_collections("start", {"generation": 0})
    time.sleep(main.GC_STALL_WARN_S + 0.02)
    main._time_collections("stop", {"generation": 0, "collected": 7})
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert "generation 0" in warning.getMessage() and "7 objects" in warning.getMessage()


def test_tune_gc_raises_the_young_threshold_and_times_collections() -> None:
    before, callbacks = gc.get_threshold(), list(gc.callbacks)
    try:
        main.tune_gc()
        assert gc.get_threshold()[0] == main.GC_YOUNG_THRESHOLD
        assert main._time_collections in gc.callbacks
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        gc.callbacks[:] = callbacks
