"""The canary money loop command end to end: live server, real Celery worker on Redis, PSP stub."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.tests.factories import PASSWORD
from ledger.models import Account
from payouts.models import Withdrawal
from payouts.tests.helpers import destination_for
from webhooks.stub import PSPStub

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stub(settings: Any) -> Any:
    with PSPStub(timeout_delay=2.0) as psp:
        settings.ADYEN_API_BASE = psp.url
        settings.STRIPE_API_BASE = psp.url
        settings.PAYOUT_PROVIDER_TIMEOUT_S = 2.0
        yield psp


def canary(base_url: str, player: Any, operator: Any, report_dir: Path, *extra: str, destination: bool = True) -> str:
    out = StringIO()
    to = ["--destination", json.dumps(destination_for("adyen"))] if destination else []
    call_command(
        "canary",
        "--base-url",
        base_url,
        "--player-email",
        player.email,
        "--player-password",
        PASSWORD,
        "--operator-email",
        operator.email,
        "--operator-password",
        PASSWORD,
        "--simulate",
        "--timeout",
        "30",
        "--report-dir",
        str(report_dir),
        "--release",
        "test-sha",
        *to,
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_canary_passes_and_writes_its_report(
    live_server: Any, celery_worker_on_redis: Any, stub: Any, make_player: Any, make_staff: Any, tmp_path: Path
) -> None:
    player, operator = make_player(), make_staff(role="finance")
    text = canary(live_server.url, player, operator, tmp_path)
    assert text.strip().endswith("canary: PASS")
    (report,) = tmp_path.glob("canary-*.md")
    body = report.read_text()
    assert "| Result | **PASS** |" in body and "GO: Canary PASS." in body and "{{" not in body
    assert "| 7 | Ledger settlement / invariant | PASS |" in body
    withdrawal = Withdrawal.objects.get(user=player)
    assert withdrawal.state == "paid"
    balances = dict(Account.objects.filter(owner=player).values_list("kind", "balance_u"))
    assert balances == {"user_available": 0, "user_held": 0}
    assert stub.submissions(withdrawal.attempts.get().idempotency_key) == 1
    assert withdrawal.destination == destination_for("adyen")
    [transfer] = stub.objects("adyen_transfer")
    assert transfer["counterparty"] == {"transferInstrumentId": destination_for("adyen")["transfer_instrument_id"]}


def test_the_canary_needs_a_destination_and_changes_nothing_without_one(
    make_player: Any, make_staff: Any, tmp_path: Path
) -> None:
    player = make_player()
    with pytest.raises(CommandError, match="needs a destination"):
        canary("http://127.0.0.1:9", player, make_staff(role="finance"), tmp_path, destination=False)
    assert not Withdrawal.objects.exists() and not Account.objects.filter(owner=player).exists()
    with pytest.raises(CommandError, match="--destination must be a JSON object"):
        canary("http://127.0.0.1:9", player, make_staff(role="finance"), tmp_path, "--destination", "[1]")


def test_canary_fails_when_the_payout_is_declined(
    live_server: Any, celery_worker_on_redis: Any, stub: Any, make_player: Any, make_staff: Any, tmp_path: Path
) -> None:
    stub.set_mode("adyen_transfer", "decline")
    player, operator = make_player(), make_staff(role="finance")
    with pytest.raises(CommandError, match="canary: FAIL"):
        canary(live_server.url, player, operator, tmp_path)
    body = next(tmp_path.glob("canary-*.md")).read_text()
    assert "| Result | **FAIL** |" in body and "NO-GO" in body
    assert "| 5 | Payout submitted | FAIL |" in body and "payout_failed" in body
    balances = dict(Account.objects.filter(owner=player).values_list("kind", "balance_u"))
    assert balances == {"user_available": 0, "user_held": 10_000_000}, "a failed payout keeps the funds held"


def test_canary_refuses_simulation_in_production(
    settings: Any, make_player: Any, make_staff: Any, tmp_path: Path
) -> None:
    settings.ENVIRONMENT = "production"
    with pytest.raises(CommandError, match="simulation is refused in production"):
        canary("http://127.0.0.1:9", make_player(), make_staff(role="finance"), tmp_path)


def test_the_canary_signs_its_simulated_deliveries_with_the_kernel_not_the_psp_stub() -> None:
    """Production code does not import test tooling: the canary's simulated webhooks are signed by ops.inbound."""
    import ast
    from pathlib import Path

    import ops.canary

    tree = ast.parse(Path(ops.canary.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert not any(name and name.startswith("webhooks") for name in imported), imported
