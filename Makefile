# Cumulo: `make up` starts the whole cloud, `make test` runs the tests.
# Both set up everything they need (Debian packages, a virtualenv, Python packages) on a fresh
# Debian 12 machine as root, and are quick the second time.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# what pip and apt-get print goes here (scripts/setup.sh writes it too); the terminal gets a line a step
SETUP_LOG := $(VENV)/setup.log
STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml scripts/setup.sh scripts/setup-test.sh cumulo/dashboard/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: up test unit functional conformance bench fuzz faults lint deps test-deps guest guest-test clean

# progress lines on the terminal; the cloud's log in <state_dir>/cumulo.log (or [logging] file)
up: deps guest
	@$(VENV)/bin/cumulo up --quiet

# lint first: a broken import contract fails the run before the long part
test: test-deps lint guest-test
	scripts/run-tests

# the cumulo-tiny guest images (cached: rebuilt only when guest/ or the Debian packages change);
# the small kernel of cumulo-tiny-fast (minutes, once per input: guest/build-kernel.sh) builds in
# the background here, and the running cloud registers it when it is ready
guest:
	@guest/build.sh
	@guest/build-kernel.sh --background

# the tests boot both kernels: they wait for the small one
guest-test: guest
	@guest/build-kernel.sh

unit: test-deps
	$(PY) -m pytest -q tests/unit

functional: test-deps
	$(PY) -m pytest -q tests/functional

conformance: test-deps
	scripts/conformance

bench: test-deps
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(PY) bench/identity_tokens.py
	$(PY) bench/compute_scale.py
	$(PY) bench/volume.py
	$(PY) bench/volume_attach.py
	$(PY) bench/dashboard.py

# the schema-driven fuzzer at length (make test sends 20,000 requests; FUZZ_SEED=N replays a run)
fuzz: test-deps
	FUZZ_REQUESTS=$${FUZZ_REQUESTS:-200000} $(PY) -m pytest -q -s tests/functional/test_fuzz.py

# the fault matrix at full size (make test runs a bounded form; it restarts RabbitMQ and PostgreSQL)
faults: test-deps
	$(PY) bench/faults.py $${FAULTS_SEED:+--seed $$FAULTS_SEED}

# ruff, and the import contracts of pyproject.toml's [tool.importlinter] (the service boundaries)
lint: test-deps
	$(VENV)/bin/ruff check cumulo tests bench
	$(VENV)/bin/lint-imports --no-logo

deps: $(STAMP)

test-deps: $(STAMP).test

$(STAMP):
	@SETUP_LOG=$(SETUP_LOG) scripts/setup.sh
	@rm -f $(VENV)/.stamp-*; touch $@

$(STAMP).test: $(STAMP)
	@echo "setup: installing the test packages (log: $(SETUP_LOG))"
	@$(PY) -m pip install -e '.[test]' >>$(SETUP_LOG) 2>&1 || { \
	  echo "setup: FAILED: installing the test packages; the last lines of $(SETUP_LOG):" >&2; \
	  tail -n 20 $(SETUP_LOG) | sed 's/^/  | /' >&2; exit 1; }
	@SETUP_LOG=$(SETUP_LOG) scripts/setup-test.sh
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
