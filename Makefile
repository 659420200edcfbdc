# Two commands for a newcomer: `make demo` and `make test`. Each builds .venv itself, from
# the lock file (uv.lock, exported with hashes to requirements/*.txt), so two installs a
# month apart get the same versions. `make lock` updates them after pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
BENCH := $(VENV)/.bench
UV_VERSION := 0.13.9

.PHONY: demo test test-slow test-real-central lint bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# What the demo and a deployment run: runtime dependencies only, then collector itself.
$(RUNTIME): requirements/runtime.txt pyproject.toml | $(BIN)/python
	$(PIP) --require-hashes -r requirements/runtime.txt
	$(PIP) --no-deps -e .
	touch $@

# + the test tools (pytest, ruff, schemathesis, QR decoders, pyodk): make test, make lint.
$(STAMP): requirements/dev.txt $(RUNTIME)
	$(PIP) --require-hashes -r requirements/dev.txt
	touch $@

# + what the benchmarks compare against (pandas, pyodk).
$(BENCH): requirements/bench.txt $(RUNTIME)
	$(PIP) --require-hashes -r requirements/bench.txt
	touch $@

demo: $(RUNTIME)
	$(BIN)/collector demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The long fault sweeps (marker `slow`), bounded: CI runs them after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# The Central-facing tests again, against a real ODK Central built and started on loopback
# by ../shared/real-central/build.sh (seconds when built before; a first build a minute or
# two). Only tests using the `central` fixture run; emulator-fault tests skip, saying why;
# the `slow` fault sweeps (emulator faults only) are left out.
REAL_CENTRAL ?= ../shared/real-central/build.sh
test-real-central: $(STAMP)
	bash $(REAL_CENTRAL)
	set -a && eval "$$(bash $(REAL_CENTRAL) env)" && set +a && \
	  $(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

bench: $(BENCH)
	$(BIN)/python -m bench

# After a change to pyproject.toml's dependencies: resolve again, export with hashes.
lock: | $(BIN)/python
	$(PIP) uv==$(UV_VERSION)
	$(BIN)/uv lock
	$(BIN)/uv export --frozen --no-emit-project --no-dev --no-header -q -o requirements/runtime.txt
	$(BIN)/uv export --frozen --no-emit-project --no-dev --extra dev --no-header -q -o requirements/dev.txt
	$(BIN)/uv export --frozen --no-emit-project --no-dev --extra bench --no-header -q -o requirements/bench.txt

clean:
	rm -rf $(VENV) data .pytest_cache
