# Everything a fresh machine needs: a venv, the package, a cached tidb-server build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install tidb test unit demo lint format bench bench-smoke clean help

help:
	@echo "make demo   - answer 'What is TiDB?' from a local TiDB + LocalBedrock (all set-up included)"
	@echo "make test   - run the whole test suite against a real local tidb-server"
	@echo "make unit   - the unit tests only: no Go, no server, sockets blocked (seconds)"
	@echo "make lint   - ruff + mypy"
	@echo "make bench  - benchmarks against the alternatives (prints a table)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Builds tidb-server from the Go module proxy once (about 15 min on 2 cores), cached outside the repo by version,
# then the mock-TiFlash variant for the vector-index tests (a relink of about a minute).
tidb: $(STAMP)
	@$(BIN)/python -m langchain_tidb_bedrock.local tidb build >/dev/null
	@$(BIN)/python -m langchain_tidb_bedrock.local tidb build --tiflash >/dev/null

test: tidb
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900

# The fast loop: no tidb-server build, and pytest-socket fails any test that reaches the network.
unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --disable-socket tests/unit_tests

demo: tidb
	$(BIN)/python -m langchain_tidb_bedrock demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: tidb
	$(BIN)/python -m benchmarks.run

bench-smoke: tidb
	$(BIN)/python -m benchmarks.run --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
