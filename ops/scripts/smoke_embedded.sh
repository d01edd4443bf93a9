#!/usr/bin/env bash
# Prove the embedded default: with DATABASE_URL and REDIS_URL unset, start the embedded PostgreSQL
# (ops/embedded_pg.py, a fresh data folder, its own port, never the system PostgreSQL) and the file broker,
# migrate, load demo data, serve, and expect 200 from /health/ready reporting vendor postgresql; then stop
# everything, the server too. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
PORT=${SMOKE_PORT:-18765}
work=$(mktemp -d)
chmod 711 "$work"  # as root, the server runs as its own user: it must reach its data folder inside
export DJANGO_SETTINGS_MODULE=config.settings.local
export EMBEDDED_PG_DIR="$work/pg"
unset DATABASE_URL REDIS_URL
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    "$BIN/python" -m ops.embedded_pg stop || true
    rm -rf "$work"
}
trap cleanup EXIT
DATABASE_URL=$("$BIN/python" -m ops.embedded_pg start)
export DATABASE_URL
echo "embedded PostgreSQL: $DATABASE_URL"
# As `make run` does: migrate as the owner, grant the application role, then everything else logs in as it.
owner_url=$DATABASE_URL
"$BIN/python" manage.py migrate --noinput >/dev/null
"$BIN/python" manage.py setup_db_roles
server_part=${owner_url#*://}
DATABASE_URL="postgres://${DB_APP_ROLE:-backoffice_app}@${server_part#*@}"
"$BIN/python" manage.py seed --demo
"$BIN/python" manage.py seed --demo >/dev/null  # idempotent: a second run changes nothing
"$BIN/python" manage.py runserver --noreload "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 60); do
    code=$(curl -s -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" || true)
    [ "$code" = "200" ] && break
    sleep 0.5
done
if [ "$code" != "200" ]; then
    echo "FAIL: /health/ready answered ${code:-nothing} on the embedded default"; cat "$work/server.log"; exit 1
fi
vendor=$("$BIN/python" -c 'import json, sys; print(json.load(sys.stdin)["checks"]["database"]["vendor"])' <"$work/ready.json")
if [ "$vendor" != "postgresql" ]; then
    echo "FAIL: /health/ready reports database vendor ${vendor}, not postgresql"; exit 1
fi
echo "embedded default: /health/ready 200 $(cat "$work/ready.json")"
admin=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/admin/login/")
[ "$admin" = "200" ] || { echo "FAIL: admin login page answered $admin"; exit 1; }
echo "embedded default: admin login page 200"
# The server's DATABASE_URL (this shell's) logs in as the application role, not a superuser.
roles=$("$BIN/python" manage.py shell --no-imports -c "from django.db import connection
c = connection.cursor()
c.execute('SELECT session_user, (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)')
print('%s superuser=%s' % c.fetchone())")
echo "embedded default: the server's DATABASE_URL logs in as: $roles"
[ "$roles" = "${DB_APP_ROLE:-backoffice_app} superuser=False" ] || { echo "FAIL: the server is not logged in as ${DB_APP_ROLE:-backoffice_app}"; exit 1; }
