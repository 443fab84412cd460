# Cumulo: `make up` starts the whole cloud, `make test` runs the tests.
# Both set up everything they need (Debian packages, a virtualenv, Python packages) on a fresh
# Debian 12 machine as root, and are quick the second time.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml scripts/setup.sh 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: up test unit functional conformance bench lint deps test-deps clean

up: deps
	$(VENV)/bin/cumulo up

test: test-deps
	scripts/run-tests

unit: test-deps
	$(PY) -m pytest -q tests/unit

functional: test-deps
	$(PY) -m pytest -q tests/functional

conformance: test-deps
	scripts/conformance

bench: test-deps
	$(PY) bench/identity_tokens.py

lint: test-deps
	$(VENV)/bin/ruff check cumulo tests bench

deps: $(STAMP)

test-deps: $(STAMP).test

$(STAMP):
	scripts/setup.sh
	@rm -f $(VENV)/.stamp-*; touch $@

$(STAMP).test: $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
