# Quickstart: `make demo` (install + train the default experiment), `make test` (install + tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# Re-installs only when the dependency files change; otherwise `make setup` is a no-op.
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all lint format lock clean

setup: $(STAMP)

$(UV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "uv==0.13.8"

$(STAMP): pyproject.toml requirements.lock overrides.txt $(UV)
	$(UV) pip install --python $(PY) -r requirements.lock --overrides overrides.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(PY) train.py

test: setup
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m "slow or not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Re-pin the whole dependency tree after editing pyproject.toml.
lock: $(UV)
	$(UV) pip compile pyproject.toml --extra dev --overrides overrides.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
