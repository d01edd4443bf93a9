#!/usr/bin/env bash
# `bash scripts/go_live_smoke.sh [BASE_URL]`: the go-live runbook's smoke test (`manage.py go_live_smoke`):
# migrations applied, API health 200, admin login page, auth, payouts and withdrawals routers, metrics.
# BASE_URL defaults to $SMOKE_BASE_URL or http://127.0.0.1:8000; SMOKE_EMAIL / SMOKE_PASSWORD add a real login.
set -euo pipefail
source "$(dirname "$0")/_python.sh"
base=${1:-${SMOKE_BASE_URL:-http://127.0.0.1:8000}}
args=(--base-url "$base")
if [ -n "${SMOKE_EMAIL:-}" ]; then args+=(--email "$SMOKE_EMAIL" --password "${SMOKE_PASSWORD:-}"); fi
exec "$PYTHON" "$ROOT/manage.py" go_live_smoke "${args[@]}"
