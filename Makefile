# Consentry: two commands on a fresh machine.
#   make run    create .venv, install, start the service, print the URL (state in the home that
#               `consentry --help` names: $CONSENTRY_HOME, else a ./.consentry here or above, else
#               ~/.local/share/consentry)
#   make test   create .venv, install with test extras, run the whole suite
#   make smoke  install without extras in a throw-away venv, import everything, start and probe serve
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test smoke system-deps bench clean help

help:
	@echo "make run   - install and start Consentry at http://$(HOST):$(PORT)/"
	@echo "make test  - install with test extras and run the whole test suite"
	@echo "make smoke - plain install in a throw-away venv, start and probe the service"
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

smoke:
	bash scripts/smoke-clean-venv.sh

bench: $(VENV)/.installed-test
	$(BIN)/python bench/hash_bench.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
