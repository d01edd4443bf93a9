#!/usr/bin/env bash
# `make run`: migrate, load demo data, then serve the admin and API with a Celery worker + beat and
# the local PSP stub. SQLite and the file broker unless DATABASE_URL / REDIS_URL are set.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
STUB_PORT=${STUB_PORT:-12111}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.local}
export STRIPE_API_BASE=${STRIPE_API_BASE:-http://127.0.0.1:${STUB_PORT}}
export ADYEN_API_BASE=${ADYEN_API_BASE:-http://127.0.0.1:${STUB_PORT}}
mkdir -p .run/broker/out .run/broker/processed

if [[ "${DATABASE_URL:-}" == postgres* ]]; then
    # Migrate as the owner (DATABASE_OWNER_URL, else DATABASE_URL), grant the application role, then every
    # process below (seed included) logs in as the application role (docs/deploy.md "Database roles").
    owner_url=${DATABASE_OWNER_URL:-$DATABASE_URL}
    DATABASE_URL=$owner_url "$BIN/python" manage.py migrate --noinput
    DATABASE_URL=$owner_url "$BIN/python" manage.py setup_db_roles
    server=${owner_url#*://}
    export DATABASE_URL="postgres://${DB_APP_ROLE:-backoffice_app}${DB_APP_PASSWORD:+:$DB_APP_PASSWORD}@${server#*@}"
else
    "$BIN/python" manage.py migrate --noinput
fi
"$BIN/python" manage.py seed --demo

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "stopped."
}
trap cleanup INT TERM EXIT

"$BIN/python" -m webhooks.stub --port "$STUB_PORT" --webhook-target "http://$HOST:$PORT" &
pids+=($!)
"$BIN/celery" -A config worker --beat --loglevel=INFO --concurrency=2 \
    --schedule .run/celerybeat-schedule &
pids+=($!)
echo "serving on http://$HOST:$PORT  (admin: /admin/, API docs: /v1/docs, health: /health/ready)"
"$BIN/python" manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)
wait -n "${pids[@]}"
