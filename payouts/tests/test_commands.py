"""Management commands and scheduled jobs: withdraw (house manual) and detect_stuck_finance_jobs."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ops.models import WorkerRun
from payouts.models import Withdrawal
from payouts.services import withdrawal_approve, withdrawal_request
from payouts.tasks import detect_stuck_finance_jobs

from .helpers import balances, snapshot


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def age(withdrawal: Withdrawal, **delta: float) -> None:
    Withdrawal.objects.filter(pk=withdrawal.pk).update(state_changed_at=timezone.now() - timedelta(**delta))


# --- withdraw --------------------------------------------------------------------------------

def test_withdraw_command_holds_through_the_service(funded_player: Any, assert_ledger_ok: Any) -> None:
    before = balances(funded_player)
    out = run("withdraw", "--user", funded_player.email, "--amount", "3000000", "--provider", "stripe")
    withdrawal = Withdrawal.objects.get()
    assert f"withdrawal {withdrawal.pk} requested" in out
    assert (withdrawal.state, withdrawal.amount_u, withdrawal.provider) == ("requested", 3_000_000, "stripe")
    assert balances(funded_player).held_u == 3_000_000
    assert balances(funded_player).available_u == before.available_u - 3_000_000
    assert_ledger_ok()


def test_withdraw_dry_run_changes_nothing(funded_player: Any) -> None:
    frozen = snapshot()
    out = run("withdraw", "--user", funded_player.email, "--amount", "3000000", "--dry-run")
    assert out.startswith("dry run: would hold 3.000000 USDC")
    assert snapshot() == frozen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--amount", "0"], "amount_u must be positive"),
        (["--amount", "-5"], "amount_u must be positive"),
        (["--amount", "999000000000"], "Insufficient funds"),
        (["--amount", "1000", "--currency", "BTC"], "Unknown currency"),
        (["--amount", "1000", "--provider", "paypal"], "Unknown payout provider"),
        (["--amount", "999000000000", "--dry-run"], "available"),
    ],
)
def test_withdraw_refusals_are_one_readable_line(funded_player: Any, args: list[str], message: str) -> None:
    frozen = snapshot()
    with pytest.raises(CommandError) as error:
        run("withdraw", "--user", funded_player.email, *args)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith("refused:")
    assert message.lower() in text.lower() or (message == "Insufficient funds" and "nothing was posted" in text.lower())
    assert snapshot() == frozen


def test_withdraw_unknown_user(db: Any) -> None:
    with pytest.raises(CommandError, match="No user with email"):
        run("withdraw", "--user", "nobody@example.com", "--amount", "1")


# --- detect_stuck_finance_jobs ----------------------------------------------------------------

def test_prints_nothing_when_all_is_well(funded_player: Any, finance: Any) -> None:
    fresh = withdrawal_request(user=funded_player, amount_u=1_000_000, currency="USDC", provider="adyen")
    withdrawal_approve(withdrawal_id=fresh.pk, acting_user=finance)
    assert run("detect_stuck_finance_jobs") == ""
    assert json.loads(run("detect_stuck_finance_jobs", "--json")) == []


def test_reports_each_stuck_withdrawal_once(funded_player: Any, finance: Any, settings: Any) -> None:
    requested = withdrawal_request(user=funded_player, amount_u=1_000_000, currency="USDC", provider="adyen")
    approved = withdrawal_request(user=funded_player, amount_u=2_000_000, currency="USDC", provider="adyen")
    withdrawal_approve(withdrawal_id=approved.pk, acting_user=finance)
    recent = withdrawal_request(user=funded_player, amount_u=3_000_000, currency="USDC", provider="adyen")
    age(requested, hours=25)
    age(approved, minutes=61)
    age(recent, hours=23)

    lines = run("detect_stuck_finance_jobs").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"withdrawal {requested.pk} state=requested age=25h00m")
    assert lines[1].startswith(f"withdrawal {approved.pk} state=approved age=1h01m")
    rows = json.loads(run("detect_stuck_finance_jobs", "--json"))
    assert [(r["id"], r["state"]) for r in rows] == [(str(requested.pk), "requested"), (str(approved.pk), "approved")]

    settings.PAYOUT_STUCK_REQUESTED_AFTER_S = 22 * 3600
    assert len(run("detect_stuck_finance_jobs").splitlines()) == 3


def test_scheduled_task_logs_and_records_the_run(funded_player: Any, caplog: Any) -> None:
    assert detect_stuck_finance_jobs() == 0
    stuck = withdrawal_request(user=funded_player, amount_u=1_000_000, currency="USDC", provider="adyen")
    age(stuck, hours=30)
    assert detect_stuck_finance_jobs() == 1
    assert f"withdrawal {stuck.pk} state=requested" in caplog.text
    runs = list(WorkerRun.objects.filter(worker="stuck_jobs").order_by("id").values_list("result", flat=True))
    assert runs == ["ok", "failed"]
