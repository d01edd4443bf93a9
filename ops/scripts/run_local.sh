#!/usr/bin/env bash
# `make run`: migrate, load demo data, then serve the admin and API with a Celery worker + beat and
# the local PSP stub. The embedded PostgreSQL (ops/embedded_pg.py, data under .run/pg) unless DATABASE_URL
# is set, and the file broker unless REDIS_URL is set (under RUN_DIR, default .run). Once /health/ready answers,
# it prints the demo credentials and the URLs again (`manage.py demo_credentials`), below the worker's first
# log lines. Ctrl-C stops everything, the embedded server too.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# The development settings point both PSP SDKs at the stub on STUB_PORT (config/settings/local.py), in every
# process and in any other shell; the stub pays payouts after STUB_PAYOUT_DELAY_S seconds (docs/ops/local_psp.md).
export STUB_PORT=${STUB_PORT:-12111}
STUB_PAYOUT_DELAY_S=${STUB_PAYOUT_DELAY_S:-3}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.local}
RUN_DIR=${RUN_DIR:-.run}
export RUN_DIR HOST PORT STUB_PORT
mkdir -p "$RUN_DIR/broker/out" "$RUN_DIR/broker/processed"

pids=()
announcer=""
embedded=""
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}" $announcer; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$embedded" ]; then "$BIN/python" -m ops.embedded_pg stop || true; fi
    echo "stopped."
}
trap cleanup INT TERM EXIT

if [ -z "${DATABASE_URL:-}" ]; then
    embedded=1
    DATABASE_URL=$("$BIN/python" -m ops.embedded_pg start)
    export DATABASE_URL
    echo "embedded PostgreSQL: $DATABASE_URL (data in ${EMBEDDED_PG_DIR:-.run/pg})"
fi

# Migrate as the owner (DATABASE_OWNER_URL, else DATABASE_URL), grant the application role, then every
# process below (seed included) logs in as the application role (docs/deploy.md "Database roles").
owner_url=${DATABASE_OWNER_URL:-$DATABASE_URL}
DATABASE_URL=$owner_url "$BIN/python" manage.py migrate --noinput
DATABASE_URL=$owner_url "$BIN/python" manage.py setup_db_roles
server=${owner_url#*://}
export DATABASE_URL="postgres://${DB_APP_ROLE:-backoffice_app}${DB_APP_PASSWORD:+:$DB_APP_PASSWORD}@${server#*@}"
"$BIN/python" manage.py seed --demo

# Once the server answers /health/ready and the worker's start-up lines have passed: the credentials and URLs.
announce() {
    "$BIN/python" - "http://$HOST:$PORT/health/ready" <<'PY' || return 0
import sys, time, urllib.request
for _ in range(240):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as answer:
            if answer.status == 200:
                break
    except OSError:
        pass
    time.sleep(0.5)
else:
    sys.exit(1)
time.sleep(3)
PY
    echo "================ ready: demo credentials (again: python manage.py demo_credentials) ================"
    "$BIN/python" manage.py demo_credentials || true
    echo "==== the money loop step by step: README.md \"The money loop, step by step\"; Ctrl-C stops everything ===="
}

# The stub signs its webhooks with STRIPE_WEBHOOK_SECRET / ADYEN_HMAC_KEY when set (as the settings read them),
# else with the development settings' defaults.
"$BIN/python" -m webhooks.stub --port "$STUB_PORT" --webhook-target "http://$HOST:$PORT" \
    --payout-delay "$STUB_PAYOUT_DELAY_S" &
pids+=($!)
# One worker with beat embedded. Without REDIS_URL its schedule is the file below (celery's PersistentScheduler:
# the file broker has no Redis for a lock, and one process needs none); with REDIS_URL it is the deployment's
# scheduler (config/beat.py: the lock and the schedule in Redis; the file is then unused).
"$BIN/celery" -A config worker --beat --loglevel=INFO --concurrency=2 \
    --schedule "$RUN_DIR/celerybeat-schedule" &
pids+=($!)
echo "serving on http://$HOST:$PORT  (admin: /admin/, API docs: /v1/docs, health: /health/ready)"
"$BIN/python" manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)
announce &
announcer=$!
wait -n "${pids[@]}"
