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

# Lint first: a tree that fails its static checks is not worth ten minutes of end-to-end tests.
test: setup lint
	$(PY) -m pytest -p no:cacheprovider

unit: $(VENV)/.installed
	$(PY) -m pytest -p no:cacheprovider tests/unit

# ruff (lint and format), strict mypy, the import contracts, and vulture for dead code: the product
# must use all of its own code (what only tests call is dead), the development tooling its own.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check operator devenv tests bench
	$(VENV)/bin/ruff format --check operator devenv tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture operator/jitaccess
	@# The development tooling counts as used when tests or benchmarks use it; the tests themselves
	@# (fixtures taken for their effect, fakes implementing protocols) are not vulture's to judge.
	! $(VENV)/bin/vulture devenv bench tests | grep -v '^tests/'

bench: setup
	$(PY) -m bench

crds: $(VENV)/.installed
	$(PY) -m jitaccess.api.crdgen

clean:
	rm -rf $(VENV)
