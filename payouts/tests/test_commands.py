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
from payouts.tasks import detect_stuck_finance_jobs
from webhooks.stub import STUB_CONNECTED_ACCOUNT

from .factories import WithdrawalFactory
from .helpers import ADYEN_INSTRUMENT, balances, snapshot

ADYEN_DEST = ["--transfer-instrument", ADYEN_INSTRUMENT]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def detect(*args: str) -> str:
    """Run the detector; return its output, asserting it exits 1 exactly when it printed something."""
    out = StringIO()
    try:
        call_command("detect_stuck_finance_jobs", *args, stdout=out)
    except CommandError as exc:
        assert exc.returncode == 1 and "stuck item" in str(exc)
        assert out.getvalue().strip() not in ("", "[]")
        return out.getvalue()
    assert out.getvalue().strip() in ("", "[]")
    return out.getvalue()


def age(withdrawal: Withdrawal, **delta: float) -> None:
    Withdrawal.objects.filter(pk=withdrawal.pk).update(state_changed_at=timezone.now() - timedelta(**delta))


# --- withdraw --------------------------------------------------------------------------------


def test_withdraw_command_holds_through_the_service(funded_player: Any, assert_ledger_ok: Any) -> None:
    before = balances(funded_player)
    out = run(
        "withdraw",
        "--user",
        funded_player.email,
        "--amount",
        "3000000",
        "--provider",
        "stripe",
        "--connected-account",
        STUB_CONNECTED_ACCOUNT,
    )
    withdrawal = Withdrawal.objects.get()
    assert f"withdrawal {withdrawal.pk} requested" in out
    assert (withdrawal.state, withdrawal.amount_u, withdrawal.provider) == ("requested", 3_000_000, "stripe")
    assert withdrawal.destination == {"connected_account": STUB_CONNECTED_ACCOUNT}
    assert f"to connected account {STUB_CONNECTED_ACCOUNT}" in out
    assert balances(funded_player).held_u == 3_000_000
    assert balances(funded_player).available_u == before.available_u - 3_000_000
    assert_ledger_ok()


def test_withdraw_dry_run_changes_nothing(funded_player: Any) -> None:
    frozen = snapshot()
    out = run("withdraw", "--user", funded_player.email, "--amount", "3000000", *ADYEN_DEST, "--dry-run")
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
        run("withdraw", "--user", funded_player.email, *ADYEN_DEST, *args)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith("refused:")
    assert message.lower() in text.lower() or (message == "Insufficient funds" and "nothing was posted" in text.lower())
    assert snapshot() == frozen


def test_withdraw_unknown_user(db: Any) -> None:
    with pytest.raises(CommandError, match="No user with email"):
        run("withdraw", "--user", "nobody@example.com", "--amount", "1")


# --- detect_stuck_finance_jobs ----------------------------------------------------------------


def test_prints_nothing_when_all_is_well(db: Any) -> None:
    WithdrawalFactory.create(approved=True)
    assert detect() == ""
    assert json.loads(detect("--json")) == []


def test_reports_each_stuck_withdrawal_once(settings: Any, db: Any) -> None:
    requested = WithdrawalFactory.create()
    approved = WithdrawalFactory.create(approved=True)
    recent = WithdrawalFactory.create()
    age(requested, hours=25)
    age(approved, minutes=6)
    age(recent, hours=23)

    lines = detect().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"withdrawal {requested.pk} state=requested age=25h00m")
    assert lines[1].startswith(f"withdrawal {approved.pk} state=approved age=0h06m")
    rows = json.loads(detect("--json"))
    assert [(r["id"], r["state"]) for r in rows] == [(str(requested.pk), "requested"), (str(approved.pk), "approved")]

    settings.STUCK_REQUESTED_AFTER_MINUTES = 22 * 60
    assert len(detect().splitlines()) == 3


def test_scheduled_task_logs_and_records_the_run(caplog: Any, db: Any) -> None:
    assert detect_stuck_finance_jobs() == 0
    stuck = WithdrawalFactory.create()
    age(stuck, hours=30)
    assert detect_stuck_finance_jobs() == 1
    assert f"withdrawal {stuck.pk} state=requested" in caplog.text
    runs = list(WorkerRun.objects.filter(worker="stuck_jobs").order_by("id").values_list("result", flat=True))
    assert runs == ["ok", "failed"]


def test_limits_are_minutes_for_work_that_should_take_seconds(db: Any) -> None:
    """An approved payout not submitted and a webhook not processed are stuck after 5 minutes, not hours."""
    from webhooks.models import WebhookEvent
    from webhooks.tests.factories import WebhookEventFactory

    approved = WithdrawalFactory.create(approved=True)
    event = WebhookEventFactory.create()  # received, never processed
    age(approved, minutes=4)
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=4))
    assert detect() == ""
    age(approved, minutes=5, seconds=1)
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=5, seconds=1))
    lines = detect().splitlines()
    assert [line.split(" age=")[0] for line in lines] == [
        f"withdrawal {approved.pk} state=approved",
        f"webhook_event {event.pk} state=received",
    ]
    assert all("(limit 0h05m)" in line for line in lines)
