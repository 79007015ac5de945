# Two commands set up everything from a fresh clone: `make serve`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test test-db lint bench clean

$(STAMP): pyproject.toml sdk/pyproject.toml sdk/auditsvc_sdk/_version.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./sdk -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/auditsvc serve

# Two test processes, one test file (the browser tests: all of them) each at
# a time, as tests/conftest.py groups them (PYTEST_WORKERS=0: one process).
# Each process starts its own embedded PostgreSQL; against one server
# (AUDITSVC_TEST_DATABASE_URL) a single process, since the tests create and
# drop roles, which the whole server shares.
PYTEST_WORKERS ?= $(if $(AUDITSVC_TEST_DATABASE_URL),0,2)

test: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check auditsvc sdk tests bench migrations
	$(BIN)/ruff format --check auditsvc sdk tests bench migrations
	$(BIN)/mypy auditsvc sdk/auditsvc_sdk

bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.verify
	$(BIN)/python -m bench.sdk
	$(BIN)/python -m bench.proofs
	$(BIN)/python -m bench.reports

clean:
	rm -rf $(VENV) .auditsvc .pytest_cache .mypy_cache .ruff_cache
