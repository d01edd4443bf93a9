"""Every `manage.py` command and every endpoint the runbooks name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
COMMAND = re.compile(r"manage\.py\s+([a-z_]+)")
ENDPOINT = re.compile(r"(?:(?:GET|POST)\s+`?|https?://[a-z0-9<>.:-]+)(/[a-z0-9_/{}<>:.-]*[a-z0-9_}>/])")


def test_docs_exist() -> None:
    names = {p.name for p in DOCS}
    assert {
        "onboarding.md",
        "house_operating_manual.md",
        "on_call_runbook.md",
        "go_live_runbook.md",
        "ops_handbook.md",
        "canary_report_template.md",
    } <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_named_exists(doc: Path) -> None:
    known = set(get_commands())
    named = set(COMMAND.findall(doc.read_text()))
    assert named - known == set(), f"{doc.name} names commands that do not exist"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_endpoint_named_resolves(doc: Path) -> None:
    missing = []
    for path in set(ENDPOINT.findall(doc.read_text())):
        concrete = re.sub(r"\{[a-z_]+\}|<[a-z_:]+>", "1", path)
        try:
            resolve(concrete)
        except Resolver404:
            missing.append(path)
    assert missing == [], f"{doc.name} names endpoints that do not exist"


MIGRATION = re.compile(r"\b((?:[a-z_]+/)+migrations/)?(\d{4}_[a-z][a-z0-9_]*)(?:\.py)?\b")


def test_every_migration_named_exists() -> None:
    """A migration a doc names (`rounds/migrations/0005_x.py`, or a bare `0005_x`) is a file in the tree."""
    apps = [d for d in ROOT.iterdir() if d.is_dir() and not d.is_symlink() and not d.name.startswith(".")]
    every = {p.stem for app in apps for p in app.glob("**/migrations/[0-9][0-9][0-9][0-9]_*.py")}
    assert {"0001_initial", "0001_usdc_on_chain"} <= every
    named, missing = 0, []
    for doc in DOCS:
        for folder, name in MIGRATION.findall(doc.read_text()):
            named += 1
            exists = (ROOT / folder / f"{name}.py").is_file() if folder else name in every
            if not exists:
                missing.append(f"{doc.relative_to(ROOT)}: {folder}{name}")
    assert named >= 4, "the docs name the guard migrations (docs/db-migrations.md); the pattern finds none"
    assert missing == [], f"docs name migrations that do not exist: {missing}"
