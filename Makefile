# jitaccess: the two commands of the README, and a few more.
#   make dev    set everything up, run the whole system locally (control plane, emulator, operator)
#   make test   set everything up, run every test (unit, component, end-to-end)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_PROXY := 127.0.0.1,localhost

.PHONY: setup dev test unit lint bench crds clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
	bash tests/controlplane/build.sh >/dev/null

dev: setup
	$(PY) -m devenv.dev

test: setup
	$(PY) -m pytest -p no:cacheprovider

unit: $(VENV)/.installed
	$(PY) -m pytest -p no:cacheprovider tests/unit

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check operator devenv tests bench
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) -m bench

crds: $(VENV)/.installed
	$(PY) -m jitaccess.api.crdgen

clean:
	rm -rf $(VENV)
