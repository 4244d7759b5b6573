# Two entry points for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: demo test lint typecheck serve-install dev-install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Serving install only (no TensorFlow): what the CPU Docker image runs.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# Everything the tests need: training extra (TensorFlow), test and dev tools.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,test,dev]'
	touch $@ $(VENV)/.serve

serve-install: $(VENV)/.serve
dev-install: $(VENV)/.dev

## Replay the bundled demo recording through LSL -> detection -> websocket, with the dashboard.
demo: $(VENV)/.serve
	$(BIN)/eegstream demo --port $(PORT)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile docker/Dockerfile.gpu
	$(BIN)/lint-imports  # the architecture contract in pyproject.toml

typecheck: $(VENV)/.dev
	$(BIN)/mypy

## Lint, type-check and run the whole test suite.
test: $(VENV)/.dev lint typecheck
	bash scripts/ensure-chromium
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts
