"""Every setting the code reads is declared in config/settings (or is one of Django's own), so none
exists only as a `getattr(settings, NAME, default)` in the code."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import global_settings

import config.settings.base as base

ROOT = Path(__file__).resolve().parents[2]
APPS = ["accounts", "ledger", "ops", "webhooks", "payouts", "rounds", "config"]
READ = re.compile(r"""getattr\(\s*settings\s*,\s*["']([A-Z][A-Z0-9_]*)["']|\bsettings\.([A-Z][A-Z0-9_]*)\b""")


def _names_read() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "/tests/" in str(path) or "/migrations/" in str(path):
                continue
            for match in READ.finditer(path.read_text()):
                found.setdefault(match.group(1) or match.group(2), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_setting_read_is_declared() -> None:
    found = _names_read()
    assert len(found) > 40  # the scan sees the code
    undeclared = {
        name: sorted(paths)
        for name, paths in found.items()
        if not hasattr(base, name) and not hasattr(global_settings, name)
    }
    assert undeclared == {}
