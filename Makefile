# tmeflow: `make demo` runs the embedded demo, `make test` the test suite.
# Both create .venv from the pinned lock (requirements.lock) when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tmeflow-installed
CORES ?= all
# Where torch comes from. Empty (default): with the rest of the lock, from PyPI/pip's configured
# indexes; on Linux x86-64 PyPI's torch is the CUDA build (nvidia-* wheels, several GB).
# A PyTorch index installs that build first, e.g. the CPU one:
#   make env TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (the lock's torch==X then matches the installed X+cpu and is left as it is).
TORCH_INDEX ?=
TORCH_VERSION := $(shell sed -n 's/^torch==//p' requirements.lock)

.PHONY: demo test lint report env clean-results

$(STAMP): requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
ifneq ($(strip $(TORCH_INDEX)),)
	$(BIN)/python -m pip install --quiet --no-deps --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)"
endif
	$(BIN)/python -m pip install --quiet -r requirements.lock
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

report: $(STAMP)
	$(BIN)/snakemake --cores 1 --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check workflow tests
	$(BIN)/ruff format --check workflow tests
	$(BIN)/snakefmt --check Snakefile workflow/Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

clean-results:
	rm -rf results logs benchmarks resources/demo .snakemake
