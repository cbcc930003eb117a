# The two commands: `make run` starts the service on embedded defaults; `make test` passes the
# whole suite against PostgreSQL and Redis. Both install what they need into .venv first.

# pyproject.toml's requires-python: 3.11 or 3.12. The first of these that runs one is used
# (a command on PATH proves nothing: pyenv puts shims there for versions that are not active).
# PYTHON=/path/to/python overrides. Only looked up when .venv is created.
PY_SUPPORTED := import sys; sys.exit(sys.version_info[:2] not in [(3, 11), (3, 12)])
PYTHON ?= $(firstword $(foreach p,python3.12 python3.11 python3,$(shell $(p) -c '$(PY_SUPPORTED)' >/dev/null 2>&1 && echo $(p))))
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

# Local servers of a development machine; CI and production set their own.
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/gerion
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15

# `make run PORT=8080` serves elsewhere; GERION_BIND (host:port) overrides both.
PORT        ?= 8000
GERION_BIND ?= 127.0.0.1:$(PORT)

.PHONY: run demo test lint check bench load install install-dev browser nginx clean

# Expands to nothing when .venv exists, so a missing interpreter only matters for a new one.
NEW_VENV = $(if $(wildcard $(PY)),,$(or $(PYTHON),$(error Python 3.12 or 3.11 is needed (python3.12, python3.11 or python3 on PATH), or name one: make PYTHON=/path/to/python3.12)) -m venv $(VENV))

$(VENV)/.runtime: pyproject.toml
	$(NEW_VENV)
	$(PIP) install .
	touch $@

$(VENV)/.dev: pyproject.toml
	$(NEW_VENV)
	$(PIP) install '.[dev]'
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

## Start the service on http://127.0.0.1:8000 (SQLite, in-process cache, generated dev key);
## Ctrl-C stops it.
run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/gunicorn gerion.wsgi --bind $(GERION_BIND)

## Fill make run's database with a demo (findings/management/commands/seeddemo.py); refuses a
## database that holds findings unless DEMO_ARGS=--force.
demo: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py seeddemo --url http://$(GERION_BIND) $(DEMO_ARGS)

## Browser tests drive Debian's Chromium and chromedriver (a browser that a test tool downloads
## cannot run on our machines); installed here when missing and we may (root).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing chromium and chromium-driver"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
			|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; \
		else \
			echo "browser tests need: sudo apt-get install chromium chromium-driver"; \
		fi; \
	fi

## The slow-client test puts Debian's nginx in front of gunicorn (its own configuration, ports
## and temporary files; never the system service); installed here when missing and we may (root).
nginx:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing nginx"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null \
			|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null; }; \
		else \
			echo "the reverse-proxy tests need: sudo apt-get install nginx"; \
		fi; \
	fi

## The whole test suite against PostgreSQL and Redis (DATABASE_URL / REDIS_URL).
test: $(VENV)/.dev browser nginx
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

## ruff, mypy and the migration check.
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

## Benchmarks print figures; they are not tests. They use their own database (gerion_bench).
BENCH_ENV = BENCH_DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://root@127.0.0.1:5432/gerion_bench}
bench: $(VENV)/.dev
	$(BENCH_ENV) $(PY) bench/ingest.py
	$(BENCH_ENV) $(PY) bench/auth.py
	$(BENCH_ENV) $(PY) bench/staff_pages.py

## Load and soak against gunicorn on loopback (bounded: 30 s); its own database and Redis db 14.
load: $(VENV)/.dev
	$(BENCH_ENV) $(PY) bench/load.py --duration 30

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
