# Sourced by image_build.sh and image_smoke.sh: podman as this kind of machine runs it (root, no Docker
# daemon, no systemd): runc, cgroupfs, and ops/image/containers.conf (no default ulimits to raise).
#   BACKOFFICE_IMAGE   the image's name (default backoffice:latest, as compose.yaml)
#   PODMAN_RUNTIME     the OCI runtime (default /usr/sbin/runc)
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BACKOFFICE_IMAGE=${BACKOFFICE_IMAGE:-backoffice:latest}
PODMAN_RUNTIME=${PODMAN_RUNTIME:-/usr/sbin/runc}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/ops/image/containers.conf}

# podman with the machine's runtime and cgroup manager, every call.
podman() {
    command podman --runtime "$PODMAN_RUNTIME" --cgroup-manager cgroupfs "$@"
}

# Refuse early, in one line, where podman or its runtime is missing (CI installs them: .ci/run).
require_podman() {
    command -v podman >/dev/null 2>&1 && [ -x "$PODMAN_RUNTIME" ] || {
        echo "image: podman and $PODMAN_RUNTIME are needed: apt-get install -y podman runc debootstrap" >&2
        exit 1
    }
}
