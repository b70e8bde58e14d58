# article-categorizer — the two commands: `make demo` (offline, no account needed) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
SAM := $(TOOLS)/sam/bin/sam
# o200k_base offline: seeded from ../shared/data when present, else tiktoken downloads it once.
export TIKTOKEN_CACHE_DIR := $(CURDIR)/$(TOOLS)/tiktoken-cache
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

SHARED_TIKTOKEN := ../shared/data/tiktoken-cache

.PHONY: install test lint unit demo local-up build clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet aws-sam-cli

$(TOOLS)/tiktoken-cache/.ready: $(BIN)/.installed
	mkdir -p $(TOOLS)/tiktoken-cache
	if [ -d $(SHARED_TIKTOKEN) ]; then cp -n $(SHARED_TIKTOKEN)/* $(TOOLS)/tiktoken-cache/; fi
	$(BIN)/python -c "import tiktoken; tiktoken.get_encoding('o200k_base')"
	touch $@

install: $(BIN)/.installed $(SAM) $(TOOLS)/tiktoken-cache/.ready

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml

unit: install
	$(BIN)/pytest

test: lint unit

clean:
	rm -rf .aws-sam build .mypy_cache .ruff_cache .pytest_cache
