# PokeWatch — the two commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13: `python3.13` on PATH if it runs, else the newest pyenv 3.13.x.
PYTHON ?= $(shell for p in python3.13 $$(ls -d $$HOME/.pyenv/versions/3.13.*/bin/python3.13 /root/.pyenv/versions/3.13.*/bin/python3.13 2>/dev/null | sort -V -r); do \
	  "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STORE ?= .pokewatch/store
CARDS ?= 300
HISTORY_DAYS ?= 400
PORT ?= 3000
ENV ?= default
ARCH ?= x86_64

.PHONY: help venv run test lint format validate build size smoke bench deploy clean

help:
	@echo "make run       run the pipeline on the sample market, then serve the API on :3000 (PORT=)"
	@echo "make test      ruff, mypy, then the whole test suite (what CI runs)"
	@echo "make lint      ruff + mypy + sam validate --lint + cfn-lint"
	@echo "make build     sam build (x86_64 here; ARCH=arm64 for the default deploy)"
	@echo "make size      unzipped size of every built function with its layers (JSON), fails over the limits"
	@echo "make smoke     sam build, then run every built function with only its layers (slow)"
	@echo "make bench     run the benchmarks (JSON into bench/results/)"
	@echo "make deploy    sam build + sam deploy (ENV=default|prod)"

# SAM CLI lives in its own venv: it pins versions of boto3 and friends that the app must not inherit.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_ENV := SAM_CLI_TELEMETRY=0 PATH="$(abspath $(SAM_VENV))/bin:$(dir $(PYTHON)):$$PATH"

$(SAM):
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.130' 'cfn-lint>=1.20' cfn-lint-serverless

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.13 not found (python3.13 on PATH or pyenv 3.13.x)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/pokewatch pipeline run --source sample --store $(STORE) --cards $(CARDS) --history-days $(HISTORY_DAYS)
	$(BIN)/pokewatch serve --store $(STORE) --host 127.0.0.1 --port $(PORT)

test: $(STAMP) $(SAM)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -q

lint: $(STAMP) validate
	$(BIN)/ruff check .
	$(BIN)/mypy

# sam validate --lint runs cfn-lint's own rules; the serverless rules plugin is a second pass.
validate: $(SAM)
	$(SAM_ENV) $(SAM) validate --lint
	$(SAM_ENV) $(SAM_VENV)/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules

# SAM gives a makefile layer build no architecture: LAYER_ARCH tells layers/*/Makefile which
# wheels to install. Deploy the same ARCH you build (the template defaults to arm64).
build: $(SAM)
	$(SAM_ENV) LAYER_ARCH=$(ARCH) $(SAM) build --parameter-overrides Architecture=$(ARCH)

size: $(STAMP)
	$(BIN)/python tools/check_sizes.py

smoke: $(STAMP) build
	POKEWATCH_SAM_BUILD_DIR=.aws-sam/build $(BIN)/pytest -q tests/test_built_artifacts.py

deploy: $(SAM)
	$(MAKE) build ARCH=arm64
	$(SAM_ENV) $(SAM) deploy --config-env $(ENV)

BENCH_OUT := bench/results
bench: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/backtest_real_data.py > $(BENCH_OUT)/backtest_real_data.json
	$(BIN)/python bench/model_bounds.py > $(BENCH_OUT)/model_bounds.json
	$(BIN)/python bench/pre_backtest_windows.py > $(BENCH_OUT)/pre_backtest_windows.json
	$(BIN)/python bench/calibrate_sample_market.py > $(BENCH_OUT)/calibrate_sample_market.json
	$(BIN)/python bench/api_cold_start.py > $(BENCH_OUT)/api_cold_start.json
	$(BIN)/python bench/api_warm.py > $(BENCH_OUT)/api_warm.json
	$(BIN)/python bench/api_load.py > $(BENCH_OUT)/api_load.json
	$(BIN)/python bench/pipeline_scale.py > $(BENCH_OUT)/pipeline_scale.json
	@echo "results in $(BENCH_OUT)/"

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .aws-sam .pokewatch .pytest_cache .ruff_cache
