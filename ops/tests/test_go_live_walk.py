"""Walk the go-live runbook's command sheet in its written order against a live server, and pass.

The commands are read from docs/ops/go_live_runbook.md (so the runbook cannot drift from what passes); only
placeholders are filled in (host, canary credentials, backup folder, tag). Pre-flight runs with a
production-like configuration; the canary uses `--simulate`, as the runbook allows outside production.
"""

from __future__ import annotations

import json
import re
import shlex
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.tests.factories import PASSWORD
from ops.models import Switch
from ops.prod_env import RULES
from ops.switches import switch_is_on
from ops.tests.test_commands import LIVE
from payouts.models import Withdrawal
from payouts.tests.helpers import destination_for
from webhooks.stub import PSPStub

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "ops" / "go_live_runbook.md"


def command_sheet() -> list[tuple[str, list[str]]]:
    """Return (time, argv) for each `python manage.py ...` of the command sheet, in written order."""
    text = RUNBOOK.read_text()
    sheet = text.split("## Command sheet", 1)[1].split("\n## ", 1)[0]
    steps = []
    for row in sheet.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("T"):
            continue
        for command in re.findall(r"`python manage\.py ([^`]+)`", row):
            steps.append((cells[0], shlex.split(command)))
    return steps


def fill(argv: list[str], values: dict[str, str]) -> list[str]:
    filled = []
    for i, arg in enumerate(argv):
        previous = argv[i - 1] if i else ""
        if arg in ("…", "<canary>") and previous in values:
            arg = values[previous]
        filled.append(
            arg.replace("https://<host>", values["url"]).replace("<tag>", "rc-test").replace("/backups", values["dir"])
        )
    return filled


@contextmanager
def production_like(settings: Any) -> Any:
    saved = {name: getattr(settings, name) for name in LIVE}
    for name, value in LIVE.items():
        setattr(settings, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


def test_the_go_live_runbook_passes_in_its_written_order(
    live_server: Any,
    celery_worker_on_redis: Any,
    make_player: Any,
    make_staff: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    steps = command_sheet()
    assert [name for _, (name, *_) in steps] == [
        "verify_prod_env",
        "db_restore_drill",
        "db_restore_drill",
        "switch",
        "migrate",
        "go_live_smoke",
        "switch",
        "canary",
    ]
    canary_player, operator = make_player(), make_staff(role="finance")
    values = {
        "url": live_server.url,
        "dir": str(tmp_path),
        "--email": canary_player.email,
        "--password": PASSWORD,
        "--player-email": canary_player.email,
        "--player-password": PASSWORD,
        "--operator-email": operator.email,
        "--operator-password": PASSWORD,
        "--destination": json.dumps(destination_for("adyen")),
    }
    with PSPStub(timeout_delay=2.0) as psp:
        settings.ADYEN_API_BASE = settings.STRIPE_API_BASE = psp.url
        settings.PAYOUT_PROVIDER_TIMEOUT_S = 2.0
        log = []
        for when, argv in steps:
            argv = fill(argv, values)
            if argv[0] == "canary":
                argv += ["--simulate", "--timeout", "30", "--report-dir", str(tmp_path)]
            out = StringIO()
            if argv[0] == "verify_prod_env":
                with production_like(settings):
                    call_command(*argv, stdout=out, stderr=StringIO())
            else:
                call_command(*argv, stdout=out, stderr=StringIO())
            text = out.getvalue()
            log.append(f"{when} {argv[0]}: {text.strip().splitlines()[-1] if text.strip() else 'ok'}")
            if argv[:3] == ["switch", "maintenance", "on"]:
                assert switch_is_on(Switch.Name.MAINTENANCE)
                # The acceptance of T-15: players' writes refused as maintenance, health up.
                refused = Client().post(
                    "/v1/withdrawals", {}, content_type="application/json", HTTP_AUTHORIZATION="Token nope"
                )
                assert refused.status_code == 503 and refused.json()["type"] == "maintenance"
                assert Client().get("/health").status_code == 200
            if argv[0] == "go_live_smoke":
                assert switch_is_on(Switch.Name.MAINTENANCE)  # the smoke runs during maintenance, and passes
                assert text.strip().endswith("go_live_smoke: PASS (7 steps)"), text
            if argv[0] == "canary":
                assert text.strip().endswith("canary: PASS"), text
    assert log[0].endswith(f"verify_prod_env: PASS ({len(RULES)} checks)"), log
    assert not switch_is_on(Switch.Name.MAINTENANCE)
    assert Withdrawal.objects.get(user=canary_player).state == "paid"
