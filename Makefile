# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
# options for `courier up`, e.g. make run ARGS="--c2s-port 15222" where 5222 is taken
ARGS ?=

.PHONY: run test test-pg install system test-system interop-clients bench lint clean

run: install
	$(VENV)/bin/courier up $(ARGS)

test: install test-system interop-clients
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The store's tests and a conformance subset again, on a real PostgreSQL the tests start
# themselves (tests/pgserver.py); README "Store" says which subset and why.
PG_TESTS ?= tests/store tests/delivery tests/sms/test_sms_service.py tests/test_command_results.py \
	tests/conformance/test_delivery.py tests/conformance/test_drafts.py tests/conformance/test_lists.py \
	tests/conformance/test_resilience.py
test-pg: install test-system
	COURIER_TEST_STORE=postgresql $(VENV)/bin/python -m pytest $(PG_TESTS) $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/python -m bench.throughput_latency

lint: install
	$(VENV)/bin/pip install -q ruff mypy
	$(VENV)/bin/ruff check component tests bench
	$(VENV)/bin/mypy component

install: system $(VENV)/.installed

system:
	@sh scripts/install-system.sh

# what only the tests need from Debian: PostgreSQL's server binaries
test-system:
	@sh scripts/install-system.sh --tests

# Chromium + Converse.js, Profanity and Poezio (tmux), nbxmpp, Gajim (Xvfb): the third-party clients of tests/interop/
interop-clients:
	@sh tests/interop/install.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache
