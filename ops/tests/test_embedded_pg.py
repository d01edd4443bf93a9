"""The embedded PostgreSQL (ops/embedded_pg.py): started, reused, stopped; and the settings take PostgreSQL only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings.base import instrumented_database
from ops import embedded_pg
from ops.checks import database_named

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh folder for the server (reachable by its own user when the tests run as root)."""
    parent = Path(tempfile.mkdtemp(prefix="embedded-pg-test-"))
    parent.chmod(0o711)
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(parent / "pg"))
    monkeypatch.delenv("EMBEDDED_PG_PORT", raising=False)
    yield parent / "pg"
    embedded_pg.stop()
    shutil.rmtree(parent, ignore_errors=True)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_start_serves_postgresql_on_its_own_port_then_stop_stops_it(folder: Path) -> None:
    url, started = embedded_pg.start()
    assert started and (folder / "data" / "PG_VERSION").exists()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert url == f"postgres://postgres@127.0.0.1:{port}/backoffice"
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int, current_database(),"
            " current_setting('unix_socket_directories')"
        ).fetchone()
    assert row is not None
    version, database, sockets = row
    assert version >= 180000 and database == "backoffice"
    assert sockets == ""  # TCP on 127.0.0.1 only: no socket beside the system server's

    assert embedded_pg.start() == (url, False)  # already running: the same server, not a second one
    assert embedded_pg.stop() is True
    assert not _accepts(port)
    assert embedded_pg.stop() is False


def test_run_gives_the_command_the_url_and_stops_the_server_it_started(
    folder: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = embedded_pg.main(
        ["run", "--", "sh", "-c", 'echo "$DATABASE_URL"; command -v pg_dump; echo "$PG_BINDIR"; exit 3']
    )
    out = capfd.readouterr().out.splitlines()
    assert code == 3  # the command's own exit status
    assert out[0].startswith("postgres://postgres@127.0.0.1:")
    assert out[1] == str(embedded_pg.bin_dir() / "pg_dump")  # client tools of the server's own version first
    assert out[2] == str(embedded_pg.bin_dir())  # and for db_restore_drill, whatever PATH its caller sets
    assert not _accepts(int(out[0].rsplit(":", 1)[1].split("/")[0]))


def test_the_cli_refuses_an_unknown_action(capfd: pytest.CaptureFixture[str]) -> None:
    assert embedded_pg.main(["restart"]) == 2
    assert "usage:" in capfd.readouterr().err


@pytest.mark.parametrize("engine", ["django.db.backends.sqlite3", "django.db.backends.mysql"])
def test_the_settings_refuse_a_database_that_is_not_postgresql(engine: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="must be PostgreSQL"):
        instrumented_database({"ENGINE": engine, "NAME": "x"})


def test_without_database_url_manage_py_says_why_nothing_works() -> None:
    """Unset, the settings load (Django's dummy backend); a command that needs the database fails, and the
    system check has said why first."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "(ops.W100) DATABASE_URL is not set" in done.stderr


def test_with_database_url_the_system_check_is_quiet() -> None:
    assert database_named() == []
