# Two commands do all set-up: `make test` and `make demo`.
# Everything installs into the checkout: .venv (Python) and node_modules (Azurite).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# checkov lives apart: it pins an older `packaging` than pytest accepts.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: setup test lint unit demo bench clean mutants browser screenshots

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache --extend-exclude $(CHECKOV_VENV) .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# Tests start Azurite themselves (on free ports) and stop it when they end;
# tests/integration/test_infra.py runs checkov from $(CHECKOV_VENV). The mutation gate runs
# before pytest (under a minute), so pytest's summary stays the last line.
test: setup $(CHECKOV_STAMP) browser lint mutants
	$(PY) -m pytest

# Chromium and its driver for the console's browser tests (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# The console's screenshots in docs/screenshots, taken by its browser test.
screenshots: setup browser
	CONSOLE_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/integration/test_console_browser.py -k every_page

# The no-I/O tier alone (tests/unit: no storage, servers or subprocesses), in seconds.
unit: $(STAMP)
	$(PY) -m pytest tests/unit

# Mutation testing of the rule modules against their fast tests; fails below 95% per
# module or on a stale entry in mutation/equivalent.toml (see mutation/gate.py).
mutants: $(STAMP)
	$(PY) mutation/gate.py

demo: setup
	$(PY) -m sync demo

bench: setup
	$(PY) bench/users.py
	$(PY) bench/presence.py
	$(PY) bench/webhook.py
	$(PY) bench/contacts.py
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .pytest_cache .ruff_cache mutants .mutmut.log
