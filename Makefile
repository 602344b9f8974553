# Two commands a new user needs; each builds its own virtualenv first.
#   make demo   run the example site on an embedded Redis (nothing else to install)
#   make test   run the whole test suite against real redis-server processes
# Variables: PYTHON (any 3.10+), VENV, DJANGO (a pip requirement, e.g. "django>=6,<7").

PYTHON ?= python3
VENV ?= .venv
DJANGO ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin

.PHONY: test demo lint clean bench-memory bench-speed bench-server

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e ".[test,embedded,hiredis]" $(if $(DJANGO),"$(DJANGO)")
	touch $@

test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(BIN)/.installed
	cd example_project && ../$(BIN)/python manage.py migrate --noinput -v 0
	cd example_project && ../$(BIN)/python manage.py runserver $(or $(ADDR),127.0.0.1:8000)

$(BIN)/.bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[bench]"
	touch $@

# Benchmarks (not part of `make test`): each starts its own redis-server.
bench-memory: $(BIN)/.bench
	$(BIN)/python -m tests.benchmarks.memory $(BENCH_ARGS)

bench-speed: $(BIN)/.bench
	$(BIN)/python -m tests.benchmarks.speed $(BENCH_ARGS)

bench-server: $(BIN)/.bench
	$(BIN)/python -m tests.benchmarks.server $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-* .pytest_cache example_project/db.sqlite3
