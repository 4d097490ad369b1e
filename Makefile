# churnkit: `make demo` and `make test` are all a new machine needs (Python 3.11).
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
BASE := $(VENV)/.installed-base
DEV := $(VENV)/.installed-dev

.PHONY: help demo test test-fast lint docs lock bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(BASE): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e .
	@touch $@

$(DEV): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -e ".[dev,postgres,spark]"
	@touch $@ $(BASE)

demo: $(BASE) ## Synthetic shop -> validate -> features -> the customers to look at
	$(BIN)/churnkit demo

test: $(DEV) ## The whole test suite (slow tests included), as CI runs it
	$(BIN)/pytest -n 2 --dist loadfile

test-fast: $(DEV) ## The test suite without tests marked slow
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow"

lint: $(DEV) ## ruff, and the import layers (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check churnkit training serving tests benchmarks
	$(BIN)/lint-imports --no-cache

docs: $(BASE) ## Regenerate docs/data-contract.md, docs/features.md and the output table of docs/batch.md from the code
	$(BIN)/python -m churnkit.docs docs

lock: ## Re-resolve constraints.txt from pyproject.toml in a scratch venv
	rm -rf /tmp/churnkit-lock && $(PYTHON) -m venv /tmp/churnkit-lock
	/tmp/churnkit-lock/bin/pip install --quiet -e ".[dev,postgres,spark]"
	( sed -n '1,2p' constraints.txt; /tmp/churnkit-lock/bin/pip freeze --exclude-editable ) > constraints.new
	mv constraints.new constraints.txt

bench: $(BASE) ## Run every benchmark in benchmarks/ (minutes; see benchmarks/RESULTS.md)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean: ## Remove the venv, caches and demo outputs
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis demo
