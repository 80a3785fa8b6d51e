# Marketplace Payments — developer entry points. Needs only python3 (3.11), git and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes; each starts its own PostgreSQL and Valkey and its own services (0 = in this process).
# One more than the cores: many tests wait on processes they start, so one extra worker keeps the
# cores busy (more than one extra only adds start-up work; docs/benchmarks.md, "Test suite", has the figures).
PYTEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(len(os.sched_getaffinity(0)) + 1 if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1) + 1)")

.PHONY: run test browser venv proto proto-check lint fmt bench clean reset lock breaking

## run: start PostgreSQL + Valkey (embedded), the four services, the PSP simulator and the gateway
run: $(STAMP)
	$(PY) -m svckit.devstack run

## test: the whole test suite (starts its own PostgreSQL and Valkey; exit 5 "no tests" fails)
# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set (the Dockerfile's, and CI's): every pytest
# process rewrites the asserts of each test module and of every installed pytest plugin's package
# (hypothesis, schemathesis, anyio) when it imports them, which without a cache each worker, inner session
# and service process does again. One collection first fills the cache (__pycache__, ignored by git),
# so the workers, which collect at the same moment, find it (docs/benchmarks.md, "Test suite").
test: $(STAMP) browser
	@unset PYTHONDONTWRITEBYTECODE; \
	$(PY) -m pytest --collect-only -q -p no:cacheprovider $(PYTEST_ARGS) >/dev/null 2>&1; \
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

## browser: Debian's chromium and chromedriver for the page tests, installed once before the parallel run (root only)
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium chromium-driver </dev/null >/dev/null; \
	else echo "no chromium/chromedriver and not root: the browser tests will fail (apt-get install chromium chromium-driver)"; fi

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

## proto: regenerate the committed Python stubs from proto/
proto: $(STAMP)
	$(PY) -m svckit.protogen
	$(VENV)/bin/buf lint

proto-check: $(STAMP)
	$(PY) -m svckit.protogen --check
	$(VENV)/bin/buf lint

## breaking: compare proto/ with the committed baseline image for wire-breaking changes (also a test)
breaking: $(STAMP)
	$(VENV)/bin/buf breaking --against proto/baseline.binpb

## proto-baseline: accept proto/ as the new compatibility baseline (only for a deliberate, versioned break)
proto-baseline: $(STAMP)
	$(VENV)/bin/buf build --exclude-source-info -o proto/baseline.binpb

## lint: ruff (lint and format check), then mypy over the packages, tests/ and benchmarks/ ([tool.mypy] in pyproject.toml)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --config-file pyproject.toml

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: every benchmark script, one after another (figures go to docs/benchmarks.md by hand)
bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## lock: re-pin every transitive dependency after changing pyproject.toml
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^marketplace-payments' > requirements.lock

reset:
	$(PY) -m svckit.devstack reset

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## chaos: the seeded fault campaign over pay-in: SEEDS=N runs seeds 1..N, SEED=n re-runs one (docs/reliability.md)
SEEDS ?= 10
CHAOS_ARGS ?=
.PHONY: chaos
chaos: $(STAMP)
	$(PY) benchmarks/chaos.py $(if $(SEED),--seed $(SEED),--seeds $(SEEDS)) $(CHAOS_ARGS)
