"""The runbooks' operations commands: verify_prod_env, switch, waiver, go_live_smoke,
daily_reconciliation_report, db_restore_drill."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from ops.models import AuditRecord, Switch, Waiver
from ops.switches import switch_is_on

pytestmark = pytest.mark.django_db

LIVE = {
    "DEBUG": False,
    "SECRET_KEY": "k8#Qz!v2" * 7,
    "ALLOWED_HOSTS": ["backoffice.example.net"],
    "STRIPE_API_KEY": "sk_live_abc123",
    "STRIPE_KEY_MODE": "live",
    "ADYEN_API_KEY": "AQE1live",
    "ADYEN_ENVIRONMENT": "live",
    "ADYEN_LIVE_ENDPOINT_PREFIX": "1797a841fbb37ca7-AdyenDemo",
    "STRIPE_WEBHOOK_SECRET": "whsec_live1",
    "ADYEN_HMAC_KEY": "A1B2" * 16,
    "CUSTODY_WEBHOOK_KEY": "custody-prod-key-1",
    "STRIPE_API_BASE": "",
    "ADYEN_API_BASE": "",
    "SIMULATION_ENABLED": False,
    "BOOTSTRAP_ENABLED": False,
    "SECURE_SSL_REDIRECT": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "SECURE_HSTS_SECONDS": 31_536_000,
    "METRICS_PUBLIC": False,
    "METRICS_TOKEN": "m" * 8 + "Rk2v9QpX" * 4,
}


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def live_settings(settings: Any) -> Any:
    for name, value in LIVE.items():
        setattr(settings, name, value)
    return settings


def test_verify_prod_env_passes_on_a_production_configuration(live_settings: Any) -> None:
    text = run("verify_prod_env")
    assert "FAIL" not in text and text.strip().endswith("verify_prod_env: PASS (19 checks)")


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("DEBUG", True, "debug_off"),
        ("STRIPE_API_KEY", "sk_test_123", "psp_keys_live"),
        ("ADYEN_HMAC_KEY", "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056", "webhook_secrets"),
        ("SIMULATION_ENABLED", True, "simulation_off"),
        ("STRIPE_API_BASE", "http://127.0.0.1:12111", "psp_endpoints_real"),
        ("ALLOWED_HOSTS", ["*"], "allowed_hosts"),
    ],
)
def test_verify_prod_env_fails_on_each_unsafe_setting(live_settings: Any, name: str, value: Any, check: str) -> None:
    setattr(live_settings, name, value)
    out = StringIO()
    with pytest.raises(CommandError, match="verify_prod_env: FAIL"):
        call_command("verify_prod_env", stdout=out)
    assert f"FAIL   {check}:" in out.getvalue()


def test_a_waiver_turns_a_fail_into_waived_until_its_deadline(live_settings: Any) -> None:
    live_settings.ADYEN_API_KEY = "adyen_test_key"
    run(
        "waiver",
        "add",
        "--check",
        "psp_keys_live",
        "--ticket",
        "OPS-7",
        "--risk",
        "medium",
        "--owner",
        "sre",
        "--deadline",
        (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d"),
        "--reason",
        "live key tomorrow",
    )
    assert "WAIVED psp_keys_live" in run("verify_prod_env")
    Waiver.objects.update(deadline=timezone.now() - timedelta(days=1))
    with pytest.raises(CommandError):
        run("verify_prod_env")


def waiver_add(deadline: str, *extra: str) -> str:
    return run(
        "waiver", "add", "--check", "https", "--ticket", "SEC-2", "--risk", "low", "--owner", "sre",
        "--deadline", deadline, "--reason", "certificate renewal", *extra,
    )  # fmt: skip


def test_waiver_add_refuses_a_deadline_already_past_and_records_nothing() -> None:
    yesterday = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d")
    audit = AuditRecord.objects.count()
    with pytest.raises(CommandError) as refused:
        waiver_add(yesterday)
    line = str(refused.value)
    assert line.startswith(f"--deadline {yesterday} has passed") and "Nothing was recorded" in line
    assert "\n" not in line
    assert not Waiver.objects.exists() and AuditRecord.objects.count() == audit
    with pytest.raises(CommandError, match="No user"):  # an unknown operator: nothing recorded either
        waiver_add((timezone.now() + timedelta(days=2)).strftime("%Y-%m-%d"), "--operator", "ghost@example.com")
    assert not Waiver.objects.exists() and AuditRecord.objects.count() == audit

    today = timezone.now().strftime("%Y-%m-%d")  # today is still ahead until its end (UTC)
    assert "waiver" in waiver_add(today)
    assert Waiver.objects.get().deadline > timezone.now()
    assert AuditRecord.objects.filter(action="ops.waiver.add").count() == 1


def test_the_waiver_command_exits_non_zero_on_a_past_deadline() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "manage.py", "waiver", "add", "--check", "https", "--ticket", "T", "--risk", "low",
         "--owner", "sre", "--deadline", "2020-01-31", "--reason", "r"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode == 1 and line.startswith("CommandError: --deadline 2020-01-31 has passed")


def test_an_overdue_high_risk_waiver_fails_until_escalated(live_settings: Any) -> None:
    Waiver.objects.create(
        check_name="https",
        ticket="SEC-1",
        risk="high",
        owner="sre",
        reason="r",
        deadline=timezone.now() - timedelta(hours=1),
    )
    with pytest.raises(CommandError):
        run("verify_prod_env")
    assert "ESCALATED waiver" in run("waiver", "escalate")
    assert AuditRecord.objects.filter(action="ops.waiver.escalate").count() == 1
    assert "verify_prod_env: PASS" in run("verify_prod_env")
    assert run("waiver", "escalate") == ""


def test_switch_needs_a_reason_and_is_audited() -> None:
    with pytest.raises(CommandError, match="--reason is required"):
        run("switch", "payout_freeze", "on")
    assert not switch_is_on(Switch.Name.PAYOUT_FREEZE)
    assert "payout_freeze is now on" in run("switch", "payout_freeze", "on", "--reason", "PSP degraded")
    assert switch_is_on(Switch.Name.PAYOUT_FREEZE)
    assert "payout_freeze      on  PSP degraded" in run("switch")
    record = AuditRecord.objects.get(action="switch.payout_freeze")
    assert (record.from_state, record.to_state, record.reason) == ("off", "on", "PSP degraded")
    with pytest.raises(CommandError, match="Unknown switch"):
        run("switch", "everything", "off", "--reason", "x")


def test_daily_reconciliation_report(player: Any, fund: Any, tmp_path: Path, db_owner: Any) -> None:
    fund(player, 2_000_000)
    text = run("daily_reconciliation_report")
    assert "**PASS**" in text and "| deposit | USDC | 1 | 2.000000 USDC |" in text
    assert "| test | USDC | -2.000000 USDC |" in text  # PSP clearing: the funding provider paid in 2 USDC
    out = tmp_path / "report.md"
    run("daily_reconciliation_report", "--output", str(out))
    assert out.read_text().startswith("# Daily reconciliation report")
    from ledger.models import Account

    with db_owner():  # a planted breach: the application role cannot write balances
        Account.objects.filter(owner=player).update(balance_u=1)
    with pytest.raises(CommandError, match="ledger invariant breach"):
        run("daily_reconciliation_report")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("daily_reconciliation_report", "--date", "yesterday")


@pytest.mark.django_db(transaction=True)
def test_db_restore_drill_backs_up_and_restores_into_a_scratch_database(player: Any, fund: Any, tmp_path: Path) -> None:
    fund(player, 123)
    backup = run("db_restore_drill", "--phase", "backup", "--dir", str(tmp_path))
    assert backup.startswith("backup PASS: snapshot") and "sha256" in backup
    assert len(list(tmp_path.glob("*.dump"))) == 1 and len(list(tmp_path.glob("*.sha256"))) == 1
    restore = run("db_restore_drill", "--phase", "restore", "--dir", str(tmp_path))
    assert "restore PASS" in restore and "(dropped)" in restore
    assert "journals             source            1  restored            1" in restore


def test_db_restore_drill_refuses_restore_in_production(settings: Any, tmp_path: Path) -> None:
    settings.ENVIRONMENT = "production"
    with pytest.raises(CommandError, match="REFUSED: the restore phase never runs in production"):
        run("db_restore_drill", "--phase", "restore", "--dir", str(tmp_path))


def test_db_restore_drill_detects_a_corrupted_snapshot(tmp_path: Path) -> None:
    (tmp_path / "x.dump").write_bytes(b"not a dump")
    (tmp_path / "x.dump.sha256").write_text("0" * 64 + "  x.dump\n")
    with pytest.raises(CommandError, match="checksum"):
        run("db_restore_drill", "--phase", "restore", "--dir", str(tmp_path))


@pytest.mark.django_db(transaction=True)
def test_go_live_smoke_against_a_live_server(live_server: Any, make_player: Any) -> None:
    player = make_player()
    from accounts.tests.factories import PASSWORD

    text = run("go_live_smoke", "--base-url", live_server.url, "--email", player.email, "--password", PASSWORD)
    assert text.strip().endswith("go_live_smoke: PASS (7 steps)")
    assert f"PASS auth router: logged in and out as {player.email}" in text


def test_go_live_smoke_fails_when_nothing_answers() -> None:
    out = StringIO()
    with pytest.raises(CommandError, match="go_live_smoke: FAIL"):
        call_command("go_live_smoke", "--base-url", "http://127.0.0.1:9", "--timeout", "1", stdout=out)
    assert "FAIL API health 200" in out.getvalue()


def test_production_settings_fail_fast_without_secrets(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "ADYEN_", "DATABASE_", "REDIS_"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Set the DJANGO_SECRET_KEY environment variable" in result.stderr


def test_daily_reconciliation_report_withdrawals_per_currency_in_major_units(db: Any) -> None:
    """Minor units of two currencies never add up: one row per state and currency, written for people."""
    from payouts.tests.factories import WithdrawalFactory

    WithdrawalFactory.create(amount_u=4_000_000)
    WithdrawalFactory.create(amount_u=1_000_000)
    WithdrawalFactory.create(amount_u=12_345, currency="USD", provider="stripe")
    text = run("daily_reconciliation_report")
    assert "| state | currency | count | amount |" in text
    assert "| requested | USD | 1 | $123.45 |" in text
    assert "| requested | USDC | 2 | 5.000000 USDC |" in text
    assert "minor units" not in text
