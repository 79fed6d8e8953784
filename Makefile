# The two commands of the README: `make demo` and `make test`. Both set up everything they need on a
# fresh machine (Python virtualenv, Debian packages, Maven artifacts, the local stack).
# The virtualenv holds the product (eventbus-cdc, `eventbus`) and, beside it, the development tools
# (devtools/: eventbus-dev, `eventbus-dev stack|demo`), which the service's wheel and image never carry.

# The virtualenv's interpreter: the system's own optimized Python 3.11+ where there is one (see the
# script for why); `make PYTHON=... setup` picks another.
PYTHON ?= $(shell stack/pick-python.sh)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup up down status demo test unit lint bench chaos clean

help:
	@echo "make demo    start the stack and run the sample claims domain end to end"
	@echo "make test    set up, start the stack, run every test, then lint (ruff, mypy)"
	@echo "make up | down | status   the local stack (PostgreSQL, Kafka, Connect, registry)"
	@echo "make unit    the tests that need no services"
	@echo "make bench   the benchmarks (results in bench/results/)"
	@echo "make chaos   the fault-injection run (results in bench/results/chaos.json)"

$(STAMP): pyproject.toml devtools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./devtools
	@# bytecode as a wheel install writes it (editable installs otherwise compile on every run
	@# where PYTHONDONTWRITEBYTECODE is set)
	$(BIN)/python -m compileall -q transformer/eventbus devtools > /dev/null
	touch $(STAMP)

setup: $(STAMP)
	@bash stack/install-system-packages.sh

up: setup
	$(BIN)/eventbus-dev stack up

# Only where a virtualenv exists (nothing to stop otherwise); brought up to date first, so a virtualenv
# made before `eventbus-dev` existed still stops its stack.
down:
	@if [ -d $(VENV) ]; then \
	  $(MAKE) --no-print-directory $(STAMP); $(BIN)/eventbus-dev demo stop; $(BIN)/eventbus-dev stack down; \
	fi

status: setup
	$(BIN)/eventbus-dev stack status

DEMO_ARGS ?=
demo: setup
	$(BIN)/eventbus-dev demo run $(DEMO_ARGS)

# ruff, then mypy on transformer/eventbus (its settings: [tool.mypy] in pyproject.toml)
lint: setup
	$(BIN)/ruff check transformer devtools tests bench
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m "not stack" $(PYTEST_ARGS)

# Tests first (they need the stack), lint after: both must pass.
test: up
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory lint

bench: up
	$(BIN)/python -m bench.run

CHAOS_ARGS ?=
chaos: up
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean: down
	rm -rf .stack
