# tmpmail: `make run` (whole stack in the foreground) and `make test`.
# Every target passes the environment through, so TMPMAIL_* variables apply.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra arguments: `make run UP_ARGS="--store mongodb"`, `make test PYTEST_ARGS="-k compose"`.
UP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run up down status test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml changes (or the venv is new).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]' uvloop
	touch $@

install: $(STAMP)

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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
