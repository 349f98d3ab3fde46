# Conversations seats service: developer entry points.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
PYTEST := $(BIN)/pytest -q -p no:cacheprovider
SRC := app tests migrations bench

.PHONY: run test test-sqlite test-postgres lint fmt migrate bench bench-billing bench-fleet bench-replica clean

# Virtualenv with the service and the dev tools (reinstalled when pyproject.toml changes).
$(VENV)/.installed-dev: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Virtualenv with the runtime dependencies only.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $@

# Run the service locally in dev mode on http://127.0.0.1:8000 (SQLite).
run: $(VENV)/.installed
	scripts/dev-run

# Full check: lint, type-check, then the test suite on SQLite and on PostgreSQL at the same
# time (scripts/test-both: a log per half under var/test-logs/, each printed whole when done).
test: $(VENV)/.installed-dev
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy app
	MAKE='$(MAKE)' scripts/test-both

# Test suite on SQLite (ignores any TEST_DATABASE_URL in the environment).
test-sqlite: $(VENV)/.installed-dev
	env -u TEST_DATABASE_URL $(PYTEST) $(PYTEST_ARGS)

# Test suite on a throwaway PostgreSQL cluster (skipped if no server binaries).
test-postgres: $(VENV)/.installed-dev
	scripts/with-postgres $(PYTEST) $(PYTEST_ARGS)

# Lint, format check and type-check without running tests.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy app

# Reformat the code and apply safe lint fixes.
fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

# Apply database migrations (SEATS_DATABASE_URL, SQLite by default).
migrate: $(VENV)/.installed
	$(BIN)/seats migrate

# Run the benchmarks.
bench: $(VENV)/.installed-dev
	bench/run

# Benchmark of the billing run on a throwaway PostgreSQL (see docs/benchmarks.md), e.g.
# make bench-billing BENCH_BILLING_ARGS="--accounts 5000 --latency-ms 200"
BENCH_BILLING_ARGS ?=
bench-billing: $(VENV)/.installed-dev
	SEATS_REQUIRE_POSTGRES=1 env -u TEST_DATABASE_URL scripts/with-postgres \
		$(BIN)/python bench/billing.py $(BENCH_BILLING_ARGS)

# The same fleet (2 instances x 2 workers) through PgBouncer (transaction pooling) and straight
# to PostgreSQL, in one run, as ratios (see docs/benchmarks.md), e.g.
# make bench-fleet BENCH_FLEET_ENV="BENCH_DURATION=20 BENCH_ROUNDS=3"
BENCH_FLEET_ENV ?=
bench-fleet: $(VENV)/.installed-dev
	SEATS_REQUIRE_POSTGRES=1 env -u TEST_DATABASE_URL $(BENCH_FLEET_ENV) scripts/with-postgres \
		$(BIN)/python bench/fleet.py

# The agent check's cache misses read on the primary and on a streaming standby, with the
# primary's CPU per check in each case (see docs/benchmarks.md), e.g.
# make bench-replica BENCH_REPLICA_ENV="BENCH_DURATION=20 BENCH_ROUNDS=3"
BENCH_REPLICA_ENV ?=
bench-replica: $(VENV)/.installed-dev
	SEATS_REQUIRE_POSTGRES=1 env -u TEST_DATABASE_URL $(BENCH_REPLICA_ENV) scripts/with-postgres \
		$(BIN)/python bench/replica.py

# Remove the virtualenv, local state and tool caches.
clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
