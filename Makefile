# Two entry points on a fresh machine: `make run` (the service on the embedded engines) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install redis-server run demo test lint

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/activate

install: $(BIN)/activate

# The tests start real redis-server processes; install Debian's package when none is on PATH.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq redis-server)

run: install redis-server
	$(BIN)/kato-cluster up

demo: install
	$(BIN)/python -m cluster.ops.demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install redis-server lint
	$(BIN)/python -m pytest -q
