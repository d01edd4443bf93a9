#!/usr/bin/env bash
# `make prod-local`: the production settings and the process list (Procfile, via bin/backoffice) on this
# machine's PostgreSQL and Redis, with the local PSP stub; then the go-live smoke test and the canary
# against it. Exit 0 only when both PASS. Stops every process it started.
#
#   PROD_LOCAL_DATABASE_URL  the owner's URL, which migrates (the release step, then setup_db_roles);
#                            default postgres://postgres@127.0.0.1:5432/backoffice_prod_local (created if missing)
#   DB_APP_ROLE              the role every process logs in as (default backoffice_app; DB_APP_PASSWORD if
#                            the server asks one): the same database, DATABASE_URL of the processes
#   PROD_LOCAL_REDIS_URL     default redis://127.0.0.1:6379/8
#   PROD_LOCAL_PORT, PROD_LOCAL_STUB_PORT  default 18800, 18811
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
export PATH="$PWD/$BIN:$PATH" PYTHON="$PWD/$BIN/python"
PORT=${PROD_LOCAL_PORT:-18800}
STUB_PORT=${PROD_LOCAL_STUB_PORT:-18811}
work=$(mktemp -d)
logs="$work/logs"
mkdir -p "$logs"

export DATABASE_OWNER_URL=${PROD_LOCAL_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/backoffice_prod_local}
export DB_APP_ROLE=${DB_APP_ROLE:-backoffice_app}
server=${DATABASE_OWNER_URL#*://}
server=${server#*@}
export DATABASE_URL="postgres://$DB_APP_ROLE${DB_APP_PASSWORD:+:$DB_APP_PASSWORD}@$server"
export REDIS_URL=${PROD_LOCAL_REDIS_URL:-redis://127.0.0.1:6379/8}
export DJANGO_SETTINGS_MODULE=config.settings.prod_local
export DJANGO_SECRET_KEY
DJANGO_SECRET_KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))')
export DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost
export SECURE_SSL_REDIRECT=false
export STRIPE_API_BASE="http://127.0.0.1:$STUB_PORT" ADYEN_API_BASE="http://127.0.0.1:$STUB_PORT"
# Keys the stub accepts; generated per run, never real ones.
export STRIPE_API_KEY="sk_live_$("$PYTHON" -c 'import secrets; print(secrets.token_hex(12))')"
export STRIPE_WEBHOOK_SECRET="whsec_$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
export ADYEN_API_KEY="AQE$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
export ADYEN_HMAC_KEY
ADYEN_HMAC_KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32).upper())')
export ADYEN_MERCHANT_ACCOUNT=LocalMerchant ADYEN_BALANCE_ACCOUNT_ID=BA_LOCAL
# Live platform as in production (the SDK objects are pointed at the stub by ADYEN_API_BASE).
export ADYEN_ENVIRONMENT=live ADYEN_LIVE_ENDPOINT_PREFIX=local-prefix STRIPE_KEY_MODE=live
export CUSTODY_WEBHOOK_KEY
CUSTODY_WEBHOOK_KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')
export DEPOSIT_RETURN_URL="http://127.0.0.1:$PORT/deposits/return"
export METRICS_TOKEN="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))')"  # metrics are private
export PORT WEB_CONCURRENCY=${WEB_CONCURRENCY:-2} WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-1}
export LOG_LEVEL=${LOG_LEVEL:-WARNING}
export STATIC_ROOT="$work/static"
# /metrics is private in production; the stack's scraper (go_live_smoke here) reads it from this machine.
export METRICS_ALLOWED_IPS=127.0.0.1

pids=()
cleanup() {
    status=$?
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$status" != 0 ]; then
        echo "prod-local: FAIL; the processes' logs:"
        for log in "$logs"/*.log; do echo "----- $log"; tail -n 40 "$log"; done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup INT TERM EXIT

dbname=${DATABASE_OWNER_URL##*/}
if ! psql "${DATABASE_OWNER_URL%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'" | grep -q 1; then
    createdb --maintenance-db="${DATABASE_OWNER_URL%/*}/postgres" "$dbname"
fi
"$PYTHON" -m celery -A config purge -f >/dev/null

# The release step (Procfile `release:`: migrations and setup_db_roles as the owner), then an operator and a
# player with a password generated for this run: `seed` is refused under production settings, so they are
# written with the local settings on the same database, as the application role. Never the demo accounts:
# `bin/backoffice` refuses to start while one exists (accounts.E001).
release=$(sed -n 's/^release: //p' Procfile)
echo "prod-local: $release"
$release
# As the image's build does: the static files whitenoise serves (compressed, content-hashed names).
"$PYTHON" manage.py collectstatic --noinput --verbosity 0
OPERATOR_EMAIL=ops@prod-local.example.net PLAYER_EMAIL=canary-player@prod-local.example.net
export PROD_LOCAL_PASSWORD
PROD_LOCAL_PASSWORD="pl-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
DJANGO_SETTINGS_MODULE=config.settings.local "$PYTHON" manage.py seed --operator "$OPERATOR_EMAIL" --role finance \
    --player "$PLAYER_EMAIL" --password-env PROD_LOCAL_PASSWORD >/dev/null

"$PYTHON" -m webhooks.stub --port "$STUB_PORT" >"$logs/stub.log" 2>&1 &
pids+=($!)
while IFS= read -r line; do
    name=${line%%:*}
    command=${line#*: }
    [ "$name" = release ] && continue
    echo "prod-local: start $name: $command"
    $command >"$logs/$name.log" 2>&1 &
    pids+=($!)
done < <(grep -E '^[a-z-]+: ' Procfile)

base="http://127.0.0.1:$PORT"
for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$base/health/ready" 2>/dev/null && break
    sleep 0.5
done
curl -fsS "$base/health/ready"; echo
for queue in webhooks payouts rounds housekeeping; do
    for _ in $(seq 1 120); do grep -q "ready\." "$logs/worker-$queue.log" 2>/dev/null && break; sleep 0.5; done
    grep -q "ready\." "$logs/worker-$queue.log" || { echo "worker $queue did not start"; exit 1; }
done

css=$("$PYTHON" -c 'import json, os, sys; print(json.load(open(os.path.join(os.environ["STATIC_ROOT"], "staticfiles.json")))["paths"]["admin/css/base.css"])')
headers=$(curl -fsS -D - -o /dev/null "$base/static/$css")
echo "$headers" | grep -qi '^cache-control: max-age=315360000, public, immutable' \
    || { echo "prod-local: /static/$css is not served with a long cache:"; echo "$headers"; exit 1; }
echo "prod-local: /static/$css served (cache-control: max-age=315360000, public, immutable)"

echo "prod-local: bash scripts/go_live_smoke.sh $base"
SMOKE_EMAIL=$OPERATOR_EMAIL SMOKE_PASSWORD=$PROD_LOCAL_PASSWORD bash scripts/go_live_smoke.sh "$base"

echo "prod-local: canary"
"$PYTHON" manage.py canary --base-url "$base" --simulate --timeout 60 \
    --player-email "$PLAYER_EMAIL" --player-password "$PROD_LOCAL_PASSWORD" \
    --operator-email "$OPERATOR_EMAIL" --operator-password "$PROD_LOCAL_PASSWORD" \
    --destination '{"transfer_instrument_id": "SE322KH223222F5GXZFNM3BGP"}' \
    --release "$(git rev-parse --short HEAD 2>/dev/null || echo local)" --report-dir "$work/canary"
# Every process logged in as the application role: the sessions on this database, seen by the owner.
roles=$(psql "$DATABASE_OWNER_URL" -tAc "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
sessions=$(psql "$DATABASE_OWNER_URL" -tAc "SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
echo "prod-local: $sessions database sessions of the processes, logged in as: $roles"
[ "$roles" = "$DB_APP_ROLE" ] || { echo "prod-local: a process is not logged in as $DB_APP_ROLE"; exit 1; }
# verify_prod_env FAILs here by design (the PSP stub, no TLS); its database_role line must PASS.
role_check=$("$PYTHON" manage.py verify_prod_env 2>/dev/null | grep "database_role" || true)
echo "prod-local: verify_prod_env: $role_check"
case "$role_check" in PASS*) ;; *) echo "prod-local: the processes' database role is refused"; exit 1 ;; esac
echo "prod-local: PASS (go_live_smoke PASS, canary PASS, every process logged in as $DB_APP_ROLE) on production settings with the process list"
