"""`db_restore_drill --phase backup|restore`: take a snapshot, and prove it restores.

Backup runs anywhere (pg_dump, custom format, with a SHA-256 checksum). Restore NEVER touches the
configured database: it restores a snapshot into a scratch database, compares it with the source
(row counts, balance sums, ledger invariants) and drops it. The restore phase refuses to run at all
in production (the onboarding pack's first red line).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from ledger.selectors import RESTORE_CHECKS


def _tool(name: str) -> str:
    """A PostgreSQL client tool: from PG_BINDIR when set (pg_dump must be as new as the server), else on PATH."""
    bindir = os.environ.get("PG_BINDIR", "")
    return str(Path(bindir) / name) if bindir else name


COMPARE_SQL = [*RESTORE_CHECKS, ("audit records", "SELECT COUNT(*) FROM audit_log")]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Command(BaseCommand):
    help = "Backup phase (anywhere) or restore drill into a scratch database (never in production)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--phase", required=True, choices=["backup", "restore"])
        parser.add_argument("--dir", default="artifacts/backups", help="where snapshots are written")
        parser.add_argument("--snapshot", help="restore this snapshot (default: the newest in --dir)")
        parser.add_argument("--keep", action="store_true", help="keep the scratch database after the drill")

    def handle(self, *args: Any, **options: Any) -> None:
        for tool in ("pg_dump", "pg_restore", "psql"):
            if shutil.which(_tool(tool)) is None:
                raise CommandError(f"{tool} is not installed.")
        if options["phase"] == "backup":
            self._backup(Path(options["dir"]))
        else:
            if settings.ENVIRONMENT == "production":
                raise CommandError("REFUSED: the restore phase never runs in production. Run the backup phase only.")
            self._restore(Path(options["dir"]), options["snapshot"], options["keep"])

    def _conn_args(self, dbname: str | None = None) -> list[str]:
        db = settings.DATABASES["default"]
        args = [
            "-h",
            str(db.get("HOST") or "127.0.0.1"),
            "-p",
            str(db.get("PORT") or 5432),
            "-U",
            str(db.get("USER") or "postgres"),
        ]
        return [*args, "-d", dbname or db["NAME"]]

    def _backup(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = settings.DATABASES["default"]["NAME"]
        path = folder / f"{name}-{timezone.now():%Y%m%dT%H%M%SZ}.dump"
        subprocess.run([_tool("pg_dump"), "-Fc", "-f", str(path), *self._conn_args()], check=True, env=self._env())
        checksum = _sha256(path)
        path.with_suffix(".dump.sha256").write_text(f"{checksum}  {path.name}\n")
        self.stdout.write(f"backup PASS: snapshot {path} at {timezone.now():%Y-%m-%dT%H:%M:%SZ} sha256 {checksum}")

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        password = settings.DATABASES["default"].get("PASSWORD")
        if password:
            env["PGPASSWORD"] = str(password)
        return env

    def _restore(self, folder: Path, snapshot: str | None, keep: bool) -> None:
        path = Path(snapshot) if snapshot else max(folder.glob("*.dump"), default=None, key=lambda p: p.stat().st_mtime)
        if path is None or not path.exists():
            raise CommandError(f"No snapshot found (looked in {folder}). Run --phase backup first.")
        sums = path.with_suffix(".dump.sha256")
        if sums.exists() and sums.read_text().split()[0] != _sha256(path):
            raise CommandError(f"restore FAIL: checksum of {path} does not match {sums}.")
        source = settings.DATABASES["default"]["NAME"]
        scratch = f"{source}_restore_drill_{timezone.now():%Y%m%d%H%M%S}"[:63]
        psql = [_tool("psql"), "-q", "-v", "ON_ERROR_STOP=1", *self._conn_args("postgres")]
        subprocess.run([*psql, "-c", f'CREATE DATABASE "{scratch}"'], check=True, env=self._env())
        try:
            subprocess.run(
                [_tool("pg_restore"), "--no-owner", *self._conn_args(scratch), str(path)], check=True, env=self._env()
            )
            mismatches = self._compare(scratch)
        finally:
            if not keep:
                subprocess.run([*psql, "-c", f'DROP DATABASE IF EXISTS "{scratch}"'], check=True, env=self._env())
        if mismatches:
            raise CommandError("restore FAIL: " + "; ".join(mismatches))
        self.stdout.write(
            f"restore PASS: {path.name} restored into scratch database {scratch}"
            f"{' (kept)' if keep else ' (dropped)'}; counts and sums match the source"
        )

    def _compare(self, scratch: str) -> list[str]:
        mismatches = []
        for label, sql in COMPARE_SQL:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                live = int(cursor.fetchone()[0])
            out = subprocess.run(
                [_tool("psql"), "-At", *self._conn_args(scratch), "-c", sql],
                check=True,
                capture_output=True,
                text=True,
                env=self._env(),
            )
            restored = int(out.stdout.strip())
            self.stdout.write(f"  {label:<20} source {live:>12}  restored {restored:>12}")
            if label == "unbalanced batches" and restored:
                mismatches.append(f"{restored} unbalanced batch(es) in the snapshot")
            elif label != "unbalanced batches" and restored > live:
                mismatches.append(f"{label}: restored {restored} > source {live}")
        return mismatches
