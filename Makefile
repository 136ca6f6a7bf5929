# Consentry: two commands on a fresh machine.
#   make run    create .venv, install, start the service (SQLite under ./.consentry), print the URL
#   make test   create .venv, install with test extras, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test system-deps bench clean help

help:
	@echo "make run   - install and start Consentry at http://$(HOST):$(PORT)/"
	@echo "make test  - install with test extras and run the whole test suite"
	@echo "make bench - run the benchmarks in bench/"

system-deps:
	@bash scripts/system-deps.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@$(MAKE) --no-print-directory system-deps
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	@bash scripts/system-deps.sh --test
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $@

run: $(VENV)/.installed
	$(BIN)/consentry serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-test
	$(BIN)/python bench/hash_bench.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
