# tmeflow: `make demo` runs the embedded demo, `make test` the test suite.
# Both create .venv from the pinned lock (requirements.lock) when it is missing.
SHELL := /bin/bash
# The Python that creates .venv: the lock needs 3.11. python3.11 when it is on PATH, else
# python3; `make demo PYTHON=/path/to/python3.11` chooses another (checked before use).
ifeq ($(origin PYTHON),undefined)
PYTHON := $(if $(shell command -v python3.11 2>/dev/null),python3.11,python3)
endif
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
# The SLURM workflow test (pytest marker `slurm`) starts a one-node cluster and, as root,
# apt-installs slurm-wlm and munge: only when asked, `make test-slurm` or TMEFLOW_SLURM=1.
TMEFLOW_SLURM ?=
export TMEFLOW_SLURM

.PHONY: demo test test-slurm lint report env clean-results

# A wrong Python fails here, at once, instead of deep in pip (the lock's wheels are 3.11's).
$(STAMP): requirements.lock
	@test -x $(BIN)/python || { \
	  found=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	  if [ "$$found" != 3.11 ]; then \
	    echo "tmeflow needs Python 3.11 (found $${found:-no Python} at $$(command -v $(PYTHON) || echo $(PYTHON))):" \
	      "run \`make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11\` (pyenv, uv or conda can provide one)" >&2; \
	    exit 1; \
	  fi; \
	  $(PYTHON) -m venv $(VENV); \
	}
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
ifneq ($(strip $(TORCH_INDEX)),)
	$(BIN)/python -m pip install --quiet --no-deps --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)"
endif
	$(BIN)/python -m pip install --quiet -r requirements.lock
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores 1 --report results/report.html
	@echo "The demo's report: $(CURDIR)/results/report.html"

report: $(STAMP)
	$(BIN)/snakemake --cores 1 --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest $(if $(filter-out 0 no false,$(strip $(TMEFLOW_SLURM))),,-m "not slurm")

test-slurm: $(STAMP)
	TMEFLOW_SLURM=1 $(BIN)/python -m pytest -m slurm

lint: $(STAMP)
	$(BIN)/ruff check workflow tests
	$(BIN)/ruff format --check workflow tests
	$(BIN)/snakefmt --check Snakefile workflow/Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

clean-results:
	rm -rf results logs benchmarks resources/demo .snakemake
