# Two commands for a newcomer on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint deps peers venv clean

$(BIN)/regprobe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/regprobe

deps:
	./scripts/install-system-deps.sh

## peers: distribution v3, crane, oras, helm, kubeconform, kustomize, cosign at pinned versions, built with go if there is one;
## without go the tests that need them are skipped, with the reason in pytest's summary
peers:
	./scripts/install-peers.sh --optional

## demo: a throwaway local registry with sample images, one broken the way the incident broke it
demo: deps venv
	$(BIN)/python scripts/demo.py

PY_DIRS := src tests scripts $(wildcard bench)

lint: venv
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

## test: lint, type-check, and the whole suite against real servers
test: deps peers venv lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo
