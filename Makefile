# One entry point for people and CI. `make run` and `make test` work on a fresh machine
# with nothing but Python 3.11+ installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make run PORT=8901` serves elsewhere (or set JUNCTURE_PORT).
PORT   ?= $(or $(JUNCTURE_PORT),8900)

.PHONY: setup tools run demo examples test lint typecheck layers pytest bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The main job on the embedded default: the decision service on SQLite (juncture.db), with
## the example journeys checked, tested and published as its first version.
run: setup examples
	$(BIN)/juncture serve --db juncture.db --bundle examples/journeys --port $(PORT)

## The shop demo (examples/demo): Juncture with the example journeys (SQLite in a temporary
## directory) and the shop app on juncture.sdk; prints both URLs and alice's TOTP secret.
demo: setup examples
	$(BIN)/python examples/demo/run.py --port $(or $(DEMO_PORT),8080) --juncture-port $(PORT)

## Check and test the example journeys.
examples: setup
	$(BIN)/juncture check examples/journeys
	$(BIN)/juncture test examples/journeys

## The whole test suite: lint, types, import layers, then pytest with branch coverage.
test: setup tools lint typecheck layers pytest

## Programs the tests run besides Python: jq, which the docs' examples use (their test runs
## them), PostgreSQL (the tests start a server of their own: tests/postgres.py finds
## initdb on PATH or in /usr/lib/postgresql/<version>/bin), ip (iproute2: the packet-drop
## test blackholes a network namespace of its own, as root), chromium (the console's browser
## tests drive it headless with Playwright; never `playwright install`), nginx and caddy (the
## forward auth tests start their own on loopback, as an unprivileged user). Installed with apt-get when missing
## and we are root (CI); otherwise we say what to do.
tools:
	@command -v jq >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; \
	  else echo "make test needs jq: install it (apt-get install jq, brew install jq)"; exit 1; fi; }
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "make test needs PostgreSQL: install it (apt-get install postgresql)"; exit 1; fi; }
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  elif [ "$$CI" = true ]; then echo "make test needs chromium on CI (apt-get install chromium)"; exit 1; \
	  else echo "note: without chromium the console's browser tests are skipped"; fi; }
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	  elif [ "$$CI" = true ]; then echo "make test needs nginx on CI (apt-get install nginx)"; exit 1; \
	  else echo "note: without nginx the forward auth tests with a real proxy are skipped"; fi; }
	@command -v caddy >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy >/dev/null; \
	  elif [ "$$CI" = true ]; then echo "make test needs caddy on CI (apt-get install caddy)"; exit 1; \
	  else echo "note: without caddy the forward auth test through Caddy is skipped"; fi; }
	@command -v ip >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; \
	  else echo "note: without ip (iproute2) the packet-drop test is skipped"; fi; }

lint: setup
	$(BIN)/ruff check src tests bench

typecheck: setup
	$(BIN)/mypy

layers: setup
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/pytest --cov --cov-branch --cov-report=term
	@# The pure core is held to 100% line and branch coverage.
	$(BIN)/coverage report --include='src/juncture/policy/*,src/juncture/engine/*' --fail-under=100

## Benchmarks, written to bench/RESULTS.md: µs per decision against Cedar, OPA, CEL and plain
## Python; load + compile time of a 500-checkpoint bundle. The OPA bindings declare Python >= 3.14
## but work on 3.11; if they cannot be installed, evaluate.py says so in RESULTS.md. http_load.py (requests/s
## and latency of `juncture serve` against a bare Starlette floor) needs wrk (apt-get install wrk);
## forward_auth.py (nginx + Juncture against nginx alone) needs wrk and nginx (make tools).
bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	-$(BIN)/python -m pip install --quiet --ignore-requires-python opa-golib-python-bindings==0.4.4
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/compile.py
	$(BIN)/python bench/invariants.py
	$(BIN)/python bench/enrich.py
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/sweep.py --backend postgres
	$(BIN)/python bench/http_load.py
	$(BIN)/python bench/http_load.py --backends sqlite postgres --duration 10 --warmup 2
	$(BIN)/python bench/store_boundary.py
	$(BIN)/python bench/propagation.py
	$(BIN)/python bench/login.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/forward_auth.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
