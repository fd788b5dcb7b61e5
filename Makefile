# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export DATABASE_URL ?= postgresql+asyncpg://agentchat_app@127.0.0.1:5432/agentchat
export DATABASE_ADMIN_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/agentchat
export GATEWAY_PORT ?= 8000

.PHONY: help run test lint audit deps web tools check-infra db bench chaos generate

help:
	@echo "make run   - install what is missing, prepare the database, start the five services"
	@echo "make test  - lint, type-check, audit the dependencies and run the whole test suite"
	@echo "make generate - regenerate what is generated from chat_contracts: the page's protocol"
	@echo "             types (web/src/generated/) and the broker's AsyncAPI document (docs/asyncapi.*)"
	@echo "make audit - known vulnerabilities in uv.lock and web/package-lock.json (docs/security.md)"
	@echo "make bench - the benchmark: the five services vs the minimal relay (a few minutes;"
	@echo "             BENCH_ARGS=\"--levels 10,100 --repeats 1\" to change it, see docs/benchmarks.md)"
	@echo "make chaos - the full fault-injection run: more sessions, history down 30 s (root, for"
	@echo "             its own RabbitMQ node; see docs/faults.md). CI runs a smaller subset"

$(UV):
	@echo "installing uv (the Python package manager) with pip"
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

deps: $(UV)
	$(UV) sync --frozen

web:
	@if [ -f web/package.json ]; then \
		if [ ! -d web/node_modules ] || [ ! -f web/dist/index.html ] || [ -n "$$(find web/src web/index.html web/login.html web/package.json web/package-lock.json web/vite.config.ts -newer web/dist/index.html 2>/dev/null | head -1)" ]; then \
			echo "building the chat page (web/)"; \
			(cd web && npm ci --no-audit --no-fund && npm run build); \
		fi; \
	fi

# The AsyncAPI renderer `make generate` uses (and the test that checks its output).
tools:
	@if [ ! -f tools/asyncapi/node_modules/.package-lock.json ] || [ tools/asyncapi/package-lock.json -nt tools/asyncapi/node_modules/.package-lock.json ]; then \
		echo "installing the AsyncAPI renderer (tools/asyncapi/)"; \
		(cd tools/asyncapi && npm ci --no-audit --no-fund); \
	fi

check-infra: deps
	@$(UV) run chatctl check

db: check-infra
	$(UV) run chatctl db create
	$(UV) run chatctl db upgrade
	$(UV) run chatctl demo

run: deps web db
	@echo "starting the services; the chat is at http://127.0.0.1:$(GATEWAY_PORT)  (Ctrl+C stops them)"
	$(UV) run honcho start -f Procfile

lint: deps
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy services packages bench codegen .ci/audit.py
	$(UV) run lint-imports
	$(UV) run bandit -c pyproject.toml -r services packages -q

# A known vulnerability in a locked package fails; an unreachable vulnerability service only warns.
audit: deps
	UV=$(UV) $(UV) run python .ci/audit.py

test: deps web tools lint audit
	$(UV) run pytest

# Everything generated from chat_contracts (tests/unit/test_generated.py fails when it is stale).
generate: deps web tools
	$(UV) run python -m codegen

# Writes bench/results/latest.json and latest.png; the README shows the latest plot.
bench: check-infra
	$(UV) run python -m bench $(BENCH_ARGS)

# The fault-injection suite at full strength (CI runs it smaller, in `make test`): docs/faults.md.
chaos: check-infra
	CHAOS_FULL=1 $(UV) run pytest tests/faults $(CHAOS_ARGS)
