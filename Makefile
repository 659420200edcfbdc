# Two commands for a newcomer: `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-real-central lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
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

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache
