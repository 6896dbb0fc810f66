# tmpmail: `make run` (whole stack in the foreground), `make test` and `make bench`.
# Every target passes the environment through, so TMPMAIL_* variables apply.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# Extra arguments: `make run UP_ARGS="--store mongodb"`, `make test PYTEST_ARGS="-k compose"`.
# `make bench BENCH_ARGS="--quick"`, `make bench BENCH_ARGS="--only ingest,e2e"`.
UP_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install run up down status test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml changes (or the venv is new).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]' uvloop
	touch $@

install: $(STAMP)

# The bench extra (matplotlib, psutil) on top of the rest, when pyproject.toml changes.
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev,bench]' uvloop
	touch $@

run: install
	$(BIN)/tmpmail up $(UP_ARGS)

up: install
	$(BIN)/tmpmail up --detach $(UP_ARGS)

down: install
	$(BIN)/tmpmail down

status: install
	$(BIN)/tmpmail status

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# tmpmail beside Mailpit and a stock aiosmtpd sink: one table, JSON and plots under
# .tmpmail-bench/results/<timestamp>/ (bench/run.py; about 12 minutes, --quick: about 5).
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
