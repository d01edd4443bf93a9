"""The read replica on a real streaming replica.

The shared PostgreSQL server refuses replication connections (its pg_hba.conf has no `replication` entry, and
changing that needs a restart of a server others use), so this test starts its own throwaway primary with
`initdb`/`pg_ctl` on a free port, takes a streaming replica of it with `pg_basebackup -R` into a temporary
directory on another port, and runs `replica_scenario.py` in a process whose `default` is that primary and whose
DB_READONLY_ENDPOINT is that replica. Nothing is skipped: missing PostgreSQL binaries fail the test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PGBIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres(*command: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def run(*command: str) -> None:
    result = subprocess.run(as_postgres(*command), capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"


def server_options(port: int, sockets: Path) -> str:
    return (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets} -c fsync=off "
        "-c shared_buffers=16MB -c max_connections=40 -c wal_level=replica -c max_wal_senders=4 "
        "-c hot_standby=on -c wal_receiver_status_interval=1s"
    )


@pytest.fixture
def primary_and_replica() -> Iterator[dict[str, str]]:
    assert (PGBIN / "initdb").exists(), f"PostgreSQL server binaries not found in {PGBIN}"
    work = Path(tempfile.mkdtemp(prefix="replica-test-", dir="/tmp"))  # noqa: S108 - the postgres user must read it
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    primary, replica = work / "primary", work / "replica"
    ports = {"primary": free_port(), "replica": free_port()}
    started: list[Path] = []
    try:
        run(str(PGBIN / "initdb"), "-D", str(primary), "--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        run(
            str(PGBIN / "pg_ctl"),
            "-D",
            str(primary),
            "-o",
            server_options(ports["primary"], work),
            "-l",
            str(work / "primary.log"),
            "-w",
            "start",
        )
        started.append(primary)
        run(str(PGBIN / "createdb"), "-h", "127.0.0.1", "-p", str(ports["primary"]), "-U", "postgres", "app")
        run(
            str(PGBIN / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(ports["primary"]),
            "-U",
            "postgres",
            "-D",
            str(replica),
            "-R",
            "-X",
            "stream",
            "--no-sync",
            "--checkpoint=fast",
        )
        run(
            str(PGBIN / "pg_ctl"),
            "-D",
            str(replica),
            "-o",
            server_options(ports["replica"], work),
            "-l",
            str(work / "replica.log"),
            "-w",
            "start",
        )
        started.append(replica)
        stop = " ".join(as_postgres(str(PGBIN / "pg_ctl"), "-D", str(replica), "-m", "fast", "-w", "stop"))
        yield {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{ports['primary']}/app",
            "DB_READONLY_ENDPOINT": f"postgres://postgres@127.0.0.1:{ports['replica']}/app",
            "REPLICA_STOP_COMMAND": stop,
        }
    finally:
        for datadir in reversed(started):
            subprocess.run(
                as_postgres(str(PGBIN / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"),  # noqa: S603
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(work, ignore_errors=True)


def test_reports_read_a_streaming_replica_and_fall_back_to_the_primary(primary_and_replica: dict[str, str]) -> None:
    env = {
        **os.environ,
        **primary_and_replica,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "REDIS_URL": settings.CELERY_BROKER_URL,
        "DB_READONLY_CHECK_INTERVAL_S": "0",
        "DB_READONLY_MAX_LAG_S": "30",
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops.tests.replica_scenario"],
        cwd=ROOT,
        env=env,  # noqa: S603
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert result.stdout.strip().endswith("replica scenario: PASS"), result.stdout
