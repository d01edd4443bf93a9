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
