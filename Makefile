# article-categorizer — the two commands: `make demo` (offline, no account needed) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
SAM := $(TOOLS)/sam/bin/sam
# The template's security scanner, in its own venv (its pins clash with the dev tools').
CHECKOV := $(TOOLS)/checkov/bin/checkov
# The repo root, also when `sam build` runs this Makefile from a scratch copy of a CodeUri.
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
# o200k_base offline: seeded from ../shared/data when present, else tiktoken downloads it once.
export TIKTOKEN_CACHE_DIR := $(ROOT)/$(TOOLS)/tiktoken-cache
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

SHARED_TIKTOKEN := ../shared/data/tiktoken-cache

.PHONY: install test lint unit demo local-up build clean bench-budget bench-finetune bench-overhead bench-parse bench-read chaos bench

$(BIN)/.installed: pyproject.toml shared/requirements.txt shared/requirements-runtime.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet aws-sam-cli

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet "checkov>=3.2,<4"

$(TOOLS)/tiktoken-cache/.ready: $(BIN)/.installed
	mkdir -p $(TOOLS)/tiktoken-cache
	if [ -d $(SHARED_TIKTOKEN) ]; then cp -n $(SHARED_TIKTOKEN)/* $(TOOLS)/tiktoken-cache/; fi
	$(BIN)/python -c "import tiktoken; tiktoken.get_encoding('o200k_base')"
	touch $@

install: $(BIN)/.installed $(SAM) $(CHECKOV) $(TOOLS)/tiktoken-cache/.ready

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	# The serverless rules (cfn-lint-serverless) too; a finding is fixed, or skipped in the template's
	# Metadata (cfn-lint: config: ignore_checks) with the reason beside it.
	$(BIN)/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml
	$(SAM) validate --lint --template template.yaml
	# Every finding is fixed or skipped in the template (Metadata: checkov: skip) with a reason.
	$(CHECKOV) --file template.yaml --framework cloudformation --quiet --compact --skip-download

unit: install
	$(BIN)/pytest

test: lint unit

# The whole system offline (docs/offline.md): fine-tune, publish, categorise, report.
demo: install
	$(BIN)/python -m local demo

# The offline stack kept running for manual use; prints endpoints and example commands, writes the
# `sam local invoke --env-vars` file. ARGS="--container-address 172.17.0.1" on Linux (docs/offline.md).
local-up: install
	$(BIN)/python -m local up $(ARGS)

# Lambda artifacts without Docker or python3.13 (`sam build --use-container` is not needed).
# For every resource with `Metadata: {BuildMethod: makefile, ContextPath: .}`, sam build runs
# `make --makefile ./Makefile build-<LogicalId>` inside a scratch copy of its CodeUri/ContentUri,
# with ARTIFACTS_DIR set. pip fetches python3.13 arm64 wheels: the python3.13 runtime is Amazon
# Linux 2023 (glibc 2.34), so manylinux up to 2_34 runs there.
LAYER_PLATFORMS := manylinux2014_aarch64 manylinux_2_28_aarch64 manylinux_2_34_aarch64
# tiktoken's cache key for o200k_base: sha1 of its download URL.
O200K_CACHE_FILE := fb374d419588a4632f3f557e76b4b70aebbca790
require-artifacts-dir = $(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is unset: run `make build`))

build: $(SAM) $(TOOLS)/tiktoken-cache/.ready
	$(SAM) build --parallel

build-CategorizerLayer:
	$(require-artifacts-dir)
	rm -rf "$(ARTIFACTS_DIR)/python"
	$(ROOT)/$(BIN)/python -m pip install --quiet --no-compile --only-binary=:all: \
	  --implementation cp --python-version 3.13 $(addprefix --platform ,$(LAYER_PLATFORMS)) \
	  --target "$(ARTIFACTS_DIR)/python" -r requirements.txt
	# The runtime ships boto3 + botocore; a second botocore (via aws-xray-sdk) would shadow it.
	rm -rf "$(ARTIFACTS_DIR)/python/bin" "$(ARTIFACTS_DIR)"/python/botocore{,-*.dist-info}
	cp -R categorizer "$(ARTIFACTS_DIR)/python/"
	find "$(ARTIFACTS_DIR)/python/categorizer" -name __pycache__ -prune -exec rm -rf {} +
	install -D -m 0644 "$(TIKTOKEN_CACHE_DIR)/$(O200K_CACHE_FILE)" \
	  "$(ARTIFACTS_DIR)/python/categorizer/data/tiktoken/$(O200K_CACHE_FILE)"

# Any function: the *.py of its CodeUri at the zip root (its imports come from the layer).
build-%Function:
	$(require-artifacts-dir)
	cp *.py "$(ARTIFACTS_DIR)/"

# Benchmarks (devstack/bench/, docs/capacity.md); results in devstack/bench/results/ (JSON + PNG).
# The real livedoor corpus, read by path (never copied into the project).
DATA ?= ../shared/data/livedoor-dev.jsonl.gz

bench-budget: install
	$(BIN)/python -m bench.budget --data $(DATA)

# The local fine-tune on livedoor: one JSON line (top-1, top-3, train seconds, ms per article).
bench-finetune: install
	$(BIN)/python -m bench.livedoor_finetune --data $(DATA) $(ARGS)

bench-overhead: install
	$(BIN)/python -m bench.overhead --data $(DATA)

# Worst-case body-to-text time at the 200,000-character limit, one core (hostile HTML).
bench-parse: install
	$(BIN)/python -m bench.parse $(ARGS)

# 2,000 articles through the offline stack while the OpenAI server injects 20% errors, latency
# spikes and 429s; audits that nothing is lost (docs/ingest.md). ARGS="--articles 500" etc.
bench-read: install
	$(BIN)/python -m bench.read_latency $(ARGS)

chaos: install
	$(BIN)/python -m bench.chaos $(ARGS)

# Throughput at the OpenAI limit (R = 3,000 RPM, L = 300 ms) against the first implementation
# (docs/capacity.md); ~8 minutes. ARGS="--quick" for a smoke run, "--fix-moto-sqs", "--rpm ..." etc.
bench: install
	$(BIN)/python -m bench.throughput $(ARGS)

clean:
	rm -rf .aws-sam build .mypy_cache .ruff_cache .pytest_cache
