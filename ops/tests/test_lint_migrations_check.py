"""`make lint`'s migration check needs no database: it prints nothing on a machine where DATABASE_URL names
one nobody created (CI's `backoffice`; the test suite only creates `test_backoffice`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_migration_step() -> str:
    """The `lint` target's makemigrations line, as make runs it with DATABASE_URL set."""
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "no lint target in the Makefile"
    (line,) = [cmd.strip() for cmd in recipe[1].splitlines() if "makemigrations" in cmd]
    assert "--check" in line
    # With DATABASE_URL set, as in CI, `$(WITH_DB)` is empty (no embedded server is started).
    return line.replace("$(WITH_DB) ", "").replace("$(BIN)/python", sys.executable)


def test_the_lint_migration_check_prints_nothing_without_the_database_it_names() -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/backoffice_lint_never_created",
        "PYTHONWARNINGS": "default",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        ["bash", "-c", lint_migration_step()], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
