# The two commands: `make run` (serve on the embedded default) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STUB_PORT ?= 12111

.PHONY: run test smoke-embedded bench lint clean migrate-prod prod-local

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

## run: migrate, load demo data, serve admin + API with a Celery worker, beat and the PSP stub. Ctrl-C stops all.
run: $(VENV)/.runtime-installed
	HOST=$(HOST) PORT=$(PORT) STUB_PORT=$(STUB_PORT) BIN=$(BIN) bash ops/scripts/run_local.sh

## test: the whole suite on PostgreSQL and Redis (127.0.0.1), its connections as the app role (conftest.py).
test: $(VENV)/.dev-installed
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python -m pytest $(PYTEST_ARGS)

## smoke-embedded: on SQLite, migrate, load demo data, serve, expect 200 from /health/ready, stop.
smoke-embedded: $(VENV)/.runtime-installed
	BIN=$(BIN) bash ops/scripts/smoke_embedded.sh

## bench: the benchmarks in bench/ (PostgreSQL, Redis): ledger vs pgbench, webhooks, a million-bet settlement and its proofs, the console,
## the players' API under wrk; each writes artifacts/bench/<name>.json, and one table of every figure, floor and goal ends it.
bench: $(VENV)/.dev-installed
	rm -f artifacts/bench/*.json
	$(BIN)/python bench/ledger.py --clients 4
	$(BIN)/python bench/ledger.py --clients 8
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/settlement.py --check
	$(BIN)/python bench/proofs.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/summary.py

## migrate-prod: the release step (bin/backoffice migrate) with the production settings of this environment: as the
## tables' owner (DATABASE_OWNER_URL), migrations then setup_db_roles (the app role's grants; docs/deploy.md).
migrate-prod: $(VENV)/.runtime-installed
	PYTHON=$(BIN)/python DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.production} bin/backoffice migrate

## prod-local: production settings + the process list (Procfile) on local PostgreSQL/Redis with the PSP stub,
## then go_live_smoke and canary: PASS (ops/scripts/prod_local.sh).
prod-local: $(VENV)/.runtime-installed
	BIN=$(BIN) bash ops/scripts/prod_local.sh

## lint: ruff (rules and format), the layers (import-linter), types (mypy), and no model change without its migration.
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0

clean:
	rm -rf $(VENV) .run db.sqlite3
