#!/usr/bin/env bash
# `make image-smoke`: build the image (`make image`, ops/scripts/image_build.sh), then run the process list
# (Procfile) as containers of it, as `make prod-local` runs it as host processes: the release step
# (`migrate`, as the owner), `web`, one worker per queue and `beat`, each logged in as the application
# role, on this machine's PostgreSQL and Redis, with the PSP stub on the host (the stub is not in the image).
# Then go_live_smoke and canary, themselves run from the image, against the containerised web. Prints the
# build time, the image's size, the PASS lines, the uid the containers run as and the HEALTHCHECK's status;
# fails when any step fails or a container logged "Control server error". Removes every container it
# started, whatever happens.
#
#   IMAGE_SMOKE_DATABASE_URL  the owner's URL; its database is DROPPED and created again
#                             (default postgres://postgres@127.0.0.1:5432/backoffice_image)
#   DB_APP_ROLE               the role the processes log in as (default backoffice_app; DB_APP_PASSWORD if asked)
#   IMAGE_SMOKE_REDIS_URL     default redis://127.0.0.1:6379/9 (flushed first: this smoke's own db number)
#   IMAGE_SMOKE_PORT, IMAGE_SMOKE_STUB_PORT  default 18900, 18911
#   IMAGE_SMOKE_BUILD=0       skip the build and run the image already built
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
source ops/scripts/image_podman.sh
require_podman
BIN=${BIN:-.venv/bin}
PYTHON="$ROOT/$BIN/python"
PORT=${IMAGE_SMOKE_PORT:-18900}
STUB_PORT=${IMAGE_SMOKE_STUB_PORT:-18911}
run_id="bo-smoke-$$"
work=$(mktemp -d)
logs="$work/logs"
mkdir -p "$logs"
say() { echo "image-smoke: $*"; }

containers=()
stub_pid=""
cleanup() {
    status=$?
    trap - INT TERM EXIT
    for name in "${containers[@]}"; do podman logs "$name" >"$logs/$name.log" 2>&1 || true; done
    if [ "${#containers[@]}" -gt 0 ]; then podman rm --force --time 10 "${containers[@]}" >/dev/null 2>&1 || true; fi
    if [ -n "$stub_pid" ]; then kill -TERM "$stub_pid" 2>/dev/null || true; wait "$stub_pid" 2>/dev/null || true; fi
    if [ "$status" != 0 ]; then
        say "FAIL; the containers' logs:"
        for log in "$logs"/*.log; do [ -f "$log" ] && { echo "----- $log"; tail -n 40 "$log"; }; done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup INT TERM EXIT

# 1. The image.
if [ "${IMAGE_SMOKE_BUILD:-1}" != 0 ]; then
    started=$SECONDS
    bash ops/scripts/image_build.sh
    build_s=$((SECONDS - started))
else
    build_s="skipped (IMAGE_SMOKE_BUILD=0)"
fi
size=$(podman image inspect --format '{{.Size}}' "$BACKOFFICE_IMAGE")

# 2. A fresh database and Redis db, and the environment every container gets (as prod_local.sh).
owner_url=${IMAGE_SMOKE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/backoffice_image}
DB_APP_ROLE=${DB_APP_ROLE:-backoffice_app}
server=${owner_url#*://}
server=${server#*@}
app_url="postgres://$DB_APP_ROLE${DB_APP_PASSWORD:+:$DB_APP_PASSWORD}@$server"
redis_url=${IMAGE_SMOKE_REDIS_URL:-redis://127.0.0.1:6379/9}
dbname=${owner_url##*/}
dropdb --if-exists --force --maintenance-db="${owner_url%/*}/postgres" "$dbname"
createdb --maintenance-db="${owner_url%/*}/postgres" "$dbname"
redis-cli -u "$redis_url" flushdb >/dev/null

secret() { "$PYTHON" -c "import secrets, sys; print(secrets.token_${1}(int(sys.argv[1])))" "$2"; }
password="is-$(secret hex 16)"
envfile="$work/env"
cat >"$envfile" <<EOF
DATABASE_URL=$app_url
DATABASE_OWNER_URL=$owner_url
DB_APP_ROLE=$DB_APP_ROLE
REDIS_URL=$redis_url
DJANGO_SETTINGS_MODULE=config.settings.prod_local
DJANGO_SECRET_KEY=$(secret urlsafe 50)
DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost
SECURE_SSL_REDIRECT=false
STRIPE_API_BASE=http://127.0.0.1:$STUB_PORT
ADYEN_API_BASE=http://127.0.0.1:$STUB_PORT
STRIPE_API_KEY=sk_live_$(secret hex 12)
STRIPE_WEBHOOK_SECRET=whsec_$(secret hex 16)
ADYEN_API_KEY=AQE$(secret hex 16)
ADYEN_HMAC_KEY=$(secret hex 32 | tr a-f A-F)
ADYEN_MERCHANT_ACCOUNT=LocalMerchant
ADYEN_BALANCE_ACCOUNT_ID=BA_LOCAL
ADYEN_ENVIRONMENT=live
ADYEN_LIVE_ENDPOINT_PREFIX=local-prefix
STRIPE_KEY_MODE=live
CUSTODY_WEBHOOK_KEY=$(secret hex 32)
DEPOSIT_RETURN_URL=http://127.0.0.1:$PORT/deposits/return
METRICS_TOKEN=$(secret urlsafe 32)
METRICS_ALLOWED_IPS=127.0.0.1
PORT=$PORT
WEB_CONCURRENCY=${WEB_CONCURRENCY:-2}
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-1}
LOG_LEVEL=${LOG_LEVEL:-WARNING}
EOF
# Every container: the host's network (PostgreSQL, Redis and the stub on 127.0.0.1), this run's environment.
run_args=(--network host --env-file "$envfile" --label "org.backoffice.smoke=$run_id")

# A container of the image, named for this run; every one is removed on exit. Without systemd, podman 4 says
# at each start that it cannot add a timer for the HEALTHCHECK: that line is dropped (the check itself is run
# by `podman healthcheck run` below); anything else podman says is shown.
in_image() {
    local name="$run_id-$1"
    shift
    containers+=("$name")
    podman run --name "$name" "${run_args[@]}" "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
}

# 3. The release step, then an operator and a player with this run's password: `seed` is refused under the
# production settings, so they are written with the local settings, from the image, as the application role.
release=$(sed -n 's/^release: bin\/backoffice //p' Procfile)
say "release: $release"
in_image release "$BACKOFFICE_IMAGE" $release >"$work/release.out"
grep -v '^  Applying ' "$work/release.out"
# Every module of the image imports without what .dockerignore leaves out (tests, PSP stub, chain test bridge).
in_image imports -v "$ROOT/ops/image/check_imports.py:/tmp/check_imports.py:ro" --entrypoint python \
    "$BACKOFFICE_IMAGE" /tmp/check_imports.py
OPERATOR_EMAIL=ops@image-smoke.example.net PLAYER_EMAIL=canary-player@image-smoke.example.net
in_image seed -e DJANGO_SETTINGS_MODULE=config.settings.local -e IMAGE_SMOKE_PASSWORD="$password" \
    "$BACKOFFICE_IMAGE" manage seed --operator "$OPERATOR_EMAIL" --role finance --player "$PLAYER_EMAIL" \
    --password-env IMAGE_SMOKE_PASSWORD >/dev/null

# 4. The PSP stub on the host, then the process list as containers.
"$PYTHON" -m webhooks.stub --port "$STUB_PORT" >"$logs/stub.log" 2>&1 &
stub_pid=$!
while IFS= read -r line; do
    name=${line%%:*}
    command=${line#*: bin/backoffice }
    [ "$name" = release ] && continue
    say "start $name: $command"
    # shellcheck disable=SC2086  # the Procfile's arguments, word-split on purpose
    in_image "$name" --detach "$BACKOFFICE_IMAGE" $command >/dev/null
done < <(grep -E '^[a-z-]+: bin/backoffice ' Procfile)

base="http://127.0.0.1:$PORT"
for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$base/health/ready" 2>/dev/null && break
    sleep 0.5
done
say "web /health/ready: $(curl -fsS "$base/health/ready")"
# (grep reads the whole log, no -q: with pipefail, podman logs cut short by an early exit would fail the test)
worker_ready() { podman logs "$run_id-worker-$1" 2>&1 | grep "ready\." >/dev/null; }
for queue in webhooks payouts rounds housekeeping; do
    for _ in $(seq 1 120); do worker_ready "$queue" && break; sleep 0.5; done
    worker_ready "$queue" || { say "worker $queue did not start"; exit 1; }
done
podman container exists "$run_id-beat" && [ "$(podman inspect --format '{{.State.Running}}' "$run_id-beat")" = true ] \
    || { say "beat is not running"; exit 1; }

# 5. The static files collected at build time, served by whitenoise with a long cache.
css=$(podman exec "$run_id-web" python -c 'import json; print(json.load(open("/app/staticfiles/staticfiles.json"))["paths"]["admin/css/base.css"])')
headers=$(curl -fsS -D - -o /dev/null "$base/static/$css")
echo "$headers" | grep -qi '^cache-control: max-age=315360000, public, immutable' \
    || { say "/static/$css is not served with a long cache:"; echo "$headers"; exit 1; }
say "/static/$css served from the image (cache-control: max-age=315360000, public, immutable)"

# 6. go_live_smoke and canary, from the image, against the containerised web.
say "go_live_smoke against $base"
in_image go-live-smoke "$BACKOFFICE_IMAGE" manage go_live_smoke --base-url "$base" \
    --email "$OPERATOR_EMAIL" --password "$password"
say "canary against $base"
in_image canary "$BACKOFFICE_IMAGE" manage canary --base-url "$base" --simulate --timeout 60 \
    --player-email "$PLAYER_EMAIL" --player-password "$password" \
    --operator-email "$OPERATOR_EMAIL" --operator-password "$password" \
    --destination '{"transfer_instrument_id": "SE322KH223222F5GXZFNM3BGP"}' \
    --release "$(git rev-parse --short HEAD 2>/dev/null || echo local)" --report-dir /tmp/canary

# 7. Non-root, healthy, and no control-server error in any container's log.
uids=""
for name in web worker-webhooks worker-payouts worker-rounds worker-housekeeping beat; do
    uid=$(podman exec "$run_id-$name" id -u)
    [ "$uid" != 0 ] || { say "$name runs as root"; exit 1; }
    uids+="$name=$uid "
done
say "containers run as uid: $uids(image USER $(podman image inspect --format '{{.Config.User}}' "$BACKOFFICE_IMAGE"))"
[ "$(podman image inspect --format '{{.Config.Healthcheck}}' "$BACKOFFICE_IMAGE")" != "<nil>" ] \
    || { say "the image has no HEALTHCHECK (built without --format docker?)"; exit 1; }
podman healthcheck run "$run_id-web" || { say "HEALTHCHECK of web: unhealthy"; exit 1; }
say "HEALTHCHECK of web: $(podman inspect --format '{{.State.Health.Status}}' "$run_id-web") (the image's: $(
    podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$BACKOFFICE_IMAGE"))"
for name in "${containers[@]}"; do podman logs "$name" >"$logs/$name.log" 2>&1 || true; done
if grep -l "Control server error" "$logs"/*.log; then say "a container logged 'Control server error' (above)"; exit 1; fi
say "no container log holds 'Control server error' (${#containers[@]} containers)"
say "build time: $build_s s; image size: $((size / 1000000)) MB ($BACKOFFICE_IMAGE)"
say "PASS (go_live_smoke PASS, canary PASS) with the image's containers as uid ${uid}"
