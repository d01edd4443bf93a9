"""Run one manage.py command for the seeds' scripts (`python3 scripts/<name>.py ...`).

The onboarding pack, go-live runbook and ops handbook call these scripts by path; each is a thin wrapper
that passes its arguments to the management command of the same name. When the interpreter that runs
it has no Django (the machine's `python3` next to a project virtualenv), it re-runs itself with the
virtualenv's Python. DJANGO_SETTINGS_MODULE is honoured (production sets it); otherwise manage.py's default.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def run(command: str) -> None:
    """Execute `manage.py <command> <this script's arguments>` and exit with its status."""
    try:
        import django  # noqa: F401
    except ImportError:
        if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])  # noqa: S606 - the project's own interpreter
        sys.exit(
            f"{Path(sys.argv[0]).name}: Django is not installed (run `make .venv/.dev-installed` or use the image)"
        )
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.management import execute_from_command_line

    execute_from_command_line([str(ROOT / "manage.py"), command, *sys.argv[1:]])
