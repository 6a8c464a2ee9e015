# Two entry points: `make demo` and `make test`. Both create .venv if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MODEL := build/models/clinical-risk.json

.PHONY: demo test lint typecheck imports pytest install model bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch pinned in the same command: the CPU build on this machine, not a multi-GB CUDA build.
	$(BIN)/python -m pip install -q -e '.[dev,embeddings]' 'torch==2.13.0'
	touch $(STAMP)

install: $(STAMP)

$(MODEL): $(STAMP) src/enclavia/inference/training.py
	$(BIN)/enclavia model train --out $(MODEL)

model: $(MODEL)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

pytest: install model
	$(BIN)/pytest -q

test: lint typecheck imports pytest

demo: install model
	$(BIN)/python -m enclavia.cli.demo

bench: install model
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf build .enclavia .pytest_cache .mypy_cache .ruff_cache
