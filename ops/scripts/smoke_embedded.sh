#!/usr/bin/env bash
# Prove the embedded default: on SQLite with the file broker, migrate, load demo data, serve, and
# expect 200 from /health/ready; then stop. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
PORT=${SMOKE_PORT:-18765}
work=$(mktemp -d)
export DJANGO_SETTINGS_MODULE=config.settings.local
export DATABASE_URL="sqlite:///$work/smoke.sqlite3"
unset REDIS_URL
"$BIN/python" manage.py migrate --noinput >/dev/null
"$BIN/python" manage.py seed --demo
"$BIN/python" manage.py seed --demo >/dev/null  # idempotent: a second run changes nothing
"$BIN/python" manage.py runserver --noreload "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 60); do
    code=$(curl -s -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" || true)
    [ "$code" = "200" ] && break
    sleep 0.5
done
if [ "$code" != "200" ]; then
    echo "FAIL: /health/ready answered ${code:-nothing} on the embedded default"; cat "$work/server.log"; exit 1
fi
echo "embedded default: /health/ready 200 $(cat "$work/ready.json")"
admin=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/admin/login/")
[ "$admin" = "200" ] || { echo "FAIL: admin login page answered $admin"; exit 1; }
echo "embedded default: admin login page 200"
