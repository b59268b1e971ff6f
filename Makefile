# Quickstart: `make demo` (install + train the default experiment), `make test` (install + tests).
# Python 3.12: `python3.12` on the PATH, else pyenv's 3.12 (its bare shim needs PYENV_VERSION).
PYTHON ?= $(or $(shell python3.12 -c 'print("python3.12")' 2>/dev/null),$(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12))
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# Re-installs only when the dependency files change; otherwise `make setup` is a no-op.
STAMP := $(VENV)/.installed
VENV_PYTHON := $(VENV)/.python3.12

.PHONY: setup demo test test-all lint format lock clean

setup: $(STAMP)

# A venv of another Python (an older checkout's 3.11) is replaced, not patched.
$(VENV_PYTHON):
	@test -n "$(firstword $(PYTHON))" || { echo "vla-lab needs Python 3.12: install python3.12 (or pyenv install 3.12) and re-run make" >&2; exit 1; }
	rm -rf $(VENV)
	$(firstword $(PYTHON)) -m venv $(VENV)
	touch $@

$(UV): $(VENV_PYTHON)
	$(PY) -m pip install --quiet "uv==0.13.8"

# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) every
# process would otherwise recompile torch, transformers and LeRobot from source (~12 s per start).
$(STAMP): pyproject.toml requirements.lock $(UV)
	$(UV) pip install --python $(PY) -r requirements.lock -e ".[dev]"
	$(PY) -W ignore -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') > /dev/null
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
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.12 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
