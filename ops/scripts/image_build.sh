#!/usr/bin/env bash
# `make image`: build the image from the Dockerfile with podman (root, no Docker daemon), in Docker's format
# so its HEALTHCHECK is kept, with the host's network. Prints the build time and the image's size.
#
# The base, python:3.11-slim-bookworm: reused when podman already holds it; else pulled from its registry;
# else, where no registry answers (this machine kind), a stand-in is made from Debian's own packages
# (debootstrap minbase + python3, python3-venv, ca-certificates; /usr/local/bin/python -> python3) and
# imported under the same name, labelled org.backoffice.base=debootstrap-stand-in. About a minute once per
# machine; later builds reuse it. IMAGE_BASE_REBUILD=1 makes it again (and so a build from scratch).
#
#   BACKOFFICE_IMAGE      default backoffice:latest
#   IMAGE_PULL_TIMEOUT_S  seconds a registry pull may take before the stand-in is made (default 300)
#   DEBIAN_MIRROR         debootstrap's mirror (default: the machine's apt source for Debian, else deb.debian.org)
#   PIP_CERT              a CA bundle pip needs (default: /etc/pip.conf's `cert`); mounted read-only for the build
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
source ops/scripts/image_podman.sh
require_podman

BASE=docker.io/library/python:3.11-slim-bookworm
STANDIN_LABEL=org.backoffice.base

# The Debian mirror this machine's apt uses (deb822 or one-line sources), for debootstrap.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(grep -hsE '^URIs: .*/debian/?$' /etc/apt/sources.list.d/*.sources | head -n1 | awk '{print $2}')
    [ -n "$uri" ] || uri=$(grep -hsE '^deb .*/debian/? bookworm' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | head -n1 | awk '{print $2}')
    echo "${uri:-http://deb.debian.org/debian}"
}

# Build the stand-in base from Debian's packages and import it under the base's name.
make_standin() {
    command -v debootstrap >/dev/null || { echo "image: debootstrap is needed for the stand-in base" >&2; exit 1; }
    local mirror tree started
    mirror=$(debian_mirror)
    tree=$(mktemp -d /var/tmp/backoffice-base.XXXXXX)
    # shellcheck disable=SC2064  # the tree's path is fixed now
    trap "rm -rf '$tree'" EXIT
    started=$SECONDS
    echo "image: base: making a stand-in with debootstrap from $mirror (once per machine)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$tree/rootfs" "$mirror" \
        >"$tree/debootstrap.log" 2>&1 || { tail -n 30 "$tree/debootstrap.log"; exit 1; }
    # As the official image: `python` on PATH in /usr/local/bin, Debian's sources for apt, no caches.
    ln -sf /usr/bin/python3 "$tree/rootfs/usr/local/bin/python"
    ln -sf /usr/bin/python3 "$tree/rootfs/usr/local/bin/python3"
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$tree/rootfs/etc/apt/sources.list"
    rm -rf "$tree/rootfs/var/cache/apt/archives/"*.deb "$tree/rootfs/var/lib/apt/lists/"*
    tar -C "$tree/rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --change "LABEL $STANDIN_LABEL=debootstrap-stand-in" \
        - "$BASE" >/dev/null
    rm -rf "$tree"
    trap - EXIT
    echo "image: base: stand-in $BASE imported in $((SECONDS - started)) s ($(podman run --rm "$BASE" python --version))"
}

ensure_base() {
    if [ "${IMAGE_BASE_REBUILD:-}" = 1 ]; then
        make_standin  # imported under the base's name: the old one is untagged, its images keep their layers
        return
    fi
    if podman image exists "$BASE"; then
        local kind
        kind=$(podman image inspect --format "{{ index .Labels \"$STANDIN_LABEL\" }}" "$BASE")
        echo "image: base: reusing $BASE${kind:+ ($kind)}"
        return
    fi
    echo "image: base: pulling $BASE"
    if timeout "${IMAGE_PULL_TIMEOUT_S:-300}" podman pull --quiet "$BASE" >/dev/null; then
        echo "image: base: pulled $BASE"
        return
    fi
    echo "image: base: no registry answered for $BASE"
    make_standin
}

# The CA bundle pip must trust, if this machine names one: PIP_CERT, else /etc/pip.conf's `cert`.
pip_cert() {
    local cert=${PIP_CERT:-}
    [ -n "$cert" ] || cert=$(sed -nE 's/^[[:space:]]*cert[[:space:]]*=[[:space:]]*(.+)$/\1/p' /etc/pip.conf 2>/dev/null | head -n1)
    if [ -n "$cert" ] && [ -f "$cert" ]; then echo "$cert"; fi
}

ensure_base

build_args=(--format docker --network host --pull=never --layers -t "$BACKOFFICE_IMAGE" -f Dockerfile)
cert=$(pip_cert)
if [ -n "$cert" ]; then
    build_args+=(--volume "$cert:/run/build-ca/ca.crt:ro" --build-arg PIP_CERT=/run/build-ca/ca.crt)
    echo "image: pip trusts $cert (mounted read-only for the build, not copied into the image)"
fi
previous=$(podman image inspect --format '{{.Id}}' "$BACKOFFICE_IMAGE" 2>/dev/null || true)
# The build's own output goes to a log, shown when it fails.
log=$(mktemp)
started=$SECONDS
if ! podman build "${build_args[@]}" . >"$log" 2>&1; then
    tail -n 60 "$log"
    rm -f "$log"
    echo "image: the build of $BACKOFFICE_IMAGE failed (above)" >&2
    exit 1
fi
build_s=$((SECONDS - started))
rm -f "$log"
# The image this build replaced, now untagged, goes (the layer cache stays for the next build).
current=$(podman image inspect --format '{{.Id}}' "$BACKOFFICE_IMAGE")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
size=$(podman image inspect --format '{{.Size}}' "$BACKOFFICE_IMAGE")
echo "image: built $BACKOFFICE_IMAGE in $build_s s; size $((size / 1000000)) MB"
# Where the room goes: the top folders, then the largest installed packages (MB).
podman run --rm --network none --entrypoint sh "$BACKOFFICE_IMAGE" -c '
    echo "image: room (MB): $(du -sm /opt/venv /usr /var /app 2>/dev/null | sort -rn | tr "\t\n" "= ")"
    echo "image: largest packages (MB): $(du -sm /opt/venv/lib/python3*/site-packages/* | sort -rn | head -n 8 \
        | sed "s|/opt/venv/lib/python3[^/]*/site-packages/||" | tr "\t\n" "= ")"' 2> >(grep -v 'unable to get systemd connection' >&2)
