# jitaccess: the two commands of the README, and a few more.
#   make dev    set everything up, run the whole system locally (control plane, emulator, operator)
#   make test   set everything up, run every test (unit, component, end-to-end, node; attacks on two replicas)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_PROXY := 127.0.0.1,localhost

.PHONY: setup dev test replicas unit lint bench crds clean

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
# Then every tier, and the attack suites and leader election again against two replicas, in two
# lanes at once (tests/lanes.sh); `make replicas` is the second part alone.
test: setup lint
	PY=$(PY) MAKE="$(MAKE)" bash tests/lanes.sh

# The attacks must fail the same with the operator scaled to two replicas and the leader stopped:
# the end-to-end tier's operator is then the standby that took over (tests/e2e/conftest.py).
replicas: setup
	JITACCESS_E2E_REPLICAS=2 $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) tests/e2e/test_attacks*.py tests/e2e/test_leader_election.py

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
