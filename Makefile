# NearHome: one entry point for developers and CI. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml package-lock.json
	@echo "== installing NearHome and its pinned dependencies into $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# The pages' front-end packages (GOV.UK Frontend, axe-core), exactly as package-lock.json pins them.
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@# Debian's Chromium for the pages' browser tests (never a downloaded browser build).
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }
	@touch $@

install: $(INSTALLED) ## create .venv and install the project with its dev tools

infra-up: $(INSTALLED) ## start (or reuse) the local Kafka broker and PostgreSQL
	$(BIN)/nearhome infra up

infra-down: $(INSTALLED) ## stop what infra-up started
	$(BIN)/nearhome infra down

lint: $(INSTALLED) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(INSTALLED) ## mypy, strict
	$(BIN)/mypy contracts services infra tools

test: infra-up ## the whole test suite, against the real local broker and database
	$(BIN)/pytest $(PYTEST_ARGS)

quick: infra-up ## the whole suite but the slow browser, fault, secured and identity tests: for while you work, never for CI
	$(BIN)/pytest -m "not browser and not faults and not secured and not identity" $(PYTEST_ARGS)

unit: $(INSTALLED) ## only the tests that need no broker or database
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

deploy-check: $(INSTALLED) ## the image, compose file and Helm chart: rendered, validated, linted, scanned, checked against the code
	$(BIN)/python -m tools.deploy_check

check: lint types deploy-check test ## lint, types, the deployment checks and the whole test suite: what CI runs

demo: infra-up ## run the exchange locally, with a simulated North West, until Ctrl-C
	NEARHOME_ENV=development $(BIN)/nearhome run --demo --no-infra

run: infra-up ## run the four services under one supervisor (no simulator), until Ctrl-C
	NEARHOME_ENV=development $(BIN)/nearhome run --no-infra

.PHONY: help install infra-up infra-down lint types deploy-check test quick unit check demo run
