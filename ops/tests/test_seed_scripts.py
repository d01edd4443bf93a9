"""The seeds' scripts, run exactly as the onboarding pack, go-live runbook and ops handbook write them
(`python3 scripts/...py`, `bash scripts/...sh`, from the project root), on the test database."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from ledger.models import Journal
from ops.db_roles import app_role
from ops.tests.db_role_harness import app_role_active
from webhooks.models import WebhookEvent
from webhooks.tests.helpers import CUSTODY_URL, available, custody_delivery, custody_payload

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "p" * 20 + "r0duct10n-" + "k" * 30,
    "DJANGO_ALLOWED_HOSTS": "backoffice.example.net",
    "STRIPE_API_KEY": "sk_live_abc123",
    "STRIPE_WEBHOOK_SECRET": "whsec_live1",
    "ADYEN_API_KEY": "AQE1live",
    "ADYEN_HMAC_KEY": "A1B2" * 16,
    "ADYEN_MERCHANT_ACCOUNT": "Merchant",
    "ADYEN_BALANCE_ACCOUNT_ID": "BA1",
    "CUSTODY_WEBHOOK_KEY": "custody-prod-key-1",
    "DEPOSIT_RETURN_URL": "https://backoffice.example.net/return",
    "STRIPE_KEY_MODE": "live",
    "ADYEN_ENVIRONMENT": "live",
    "ADYEN_LIVE_ENDPOINT_PREFIX": "1797a841fbb37ca7-AdyenDemo",
    "METRICS_TOKEN": "Qm7Rk2v9Xp3Lz8Wn4Tc6Yb1Hd5Gf0Js2",
}


def seed_script(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `command` through bash from the project root, with the machine's python3 on PATH."""
    db = connection.settings_dict
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VIRTUAL_ENV"))},
        "PATH": "/usr/local/bin:/usr/bin:/bin",  # `python3` is the machine's, not the virtualenv's
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{app_role() if app_role_active() else db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.CELERY_BROKER_URL,
        **env,
    }
    return subprocess.run(  # noqa: S603
        ["/bin/bash", "-c", command],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_verify_prod_env_py_passes_on_production_and_fails_on_the_test_configuration() -> None:
    result = seed_script("python3 scripts/verify_prod_env.py", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    assert "debug" in result.stdout.lower()

    result = seed_script("python3 scripts/verify_prod_env.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout


def test_go_live_smoke_sh(live_server: Any, make_staff: Any) -> None:
    operator = make_staff(role="finance")
    operator.set_password("smoke-pass-1")
    operator.save()
    result = seed_script(
        "bash scripts/go_live_smoke.sh",
        SMOKE_BASE_URL=live_server.url,
        SMOKE_EMAIL=operator.email,
        SMOKE_PASSWORD="smoke-pass-1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "go_live_smoke: PASS" in result.stdout
    assert "PASS auth router" in result.stdout


def test_go_live_smoke_sh_fails_when_nothing_answers() -> None:
    result = seed_script("bash scripts/go_live_smoke.sh", SMOKE_BASE_URL="http://127.0.0.1:9")
    assert result.returncode != 0
    assert "FAIL API health 200" in result.stdout


def test_detect_stuck_finance_jobs_py_prints_nothing_when_all_is_well_and_lists_a_stuck_webhook(
    player: Any, settings: Any
) -> None:
    settings.WEBHOOK_CREDIT_IN_REQUEST = False  # the deposit waits for a worker (none runs here)
    result = seed_script("python3 scripts/detect_stuck_finance_jobs.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""

    delivery = custody_delivery(custody_payload(player, amount_u=3_000_000, reference="tx-stuck"))
    assert (
        Client()
        .post(CUSTODY_URL, data=delivery.body, content_type="application/json", headers=delivery.headers)
        .status_code
        == 202
    )
    WebhookEvent.objects.update(received_at=WebhookEvent.objects.get().received_at.replace(year=2020))
    result = seed_script("python3 scripts/detect_stuck_finance_jobs.py")
    event = WebhookEvent.objects.get()
    assert f"webhook_event {event.pk} " in result.stdout, result.stdout + result.stderr


def test_daily_reconciliation_report_py_and_its_w1_template(player: Any, fund: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from ops.models import Waiver

    fund(player, 5_000_000)
    Waiver.objects.create(
        check_name="cors",
        ticket="OPS-7",
        risk="high",
        owner="@sre-lead",
        reason="cdn",
        deadline=timezone.now() + timedelta(days=2),
    )
    result = seed_script("python3 scripts/daily_reconciliation_report.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Daily reconciliation report")
    assert "**PASS**" in result.stdout

    w1 = seed_script("python3 scripts/daily_reconciliation_report.py --template w1")
    assert w1.returncode == 0, w1.stderr
    text = w1.stdout
    assert text.startswith(f"# W1 report — {timezone.now():%Y-%m-%d} (UTC)")
    assert "{{" not in text
    sections = [
        "## 1. Date",
        "## 2. Invariants",
        "## 3. Deposits",
        "## 4. Withdrawals by state",
        "## 5. Payouts",
        "## 6. Round results",
        "## 7. Open risks (owner)",
    ]
    assert [text.index(s) for s in sections] == sorted(text.index(s) for s in sections)
    assert "**PASS**" in text
    risks = text[text.index(sections[6]) :]
    assert "waiver cors (high, ticket OPS-7)" in risks and "owner: @sre-lead" in risks


def test_replay_psp_webhooks_py_event_id(player: Any, settings: Any) -> None:
    settings.WEBHOOK_CREDIT_IN_REQUEST = False  # the deposit waits for a worker (none runs here)
    delivery = custody_delivery(custody_payload(player, amount_u=4_000_000, reference="tx-replay-script"))
    assert (
        Client()
        .post(CUSTODY_URL, data=delivery.body, content_type="application/json", headers=delivery.headers)
        .status_code
        == 202
    )
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.RECEIVED  # no worker in this test: the message waits in Redis

    result = seed_script(f"python3 scripts/replay_psp_webhooks.py --event-id {event.pk}")

    assert result.returncode == 0, result.stdout + result.stderr
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert available(player, "USDC") == 4_000_000
    again = seed_script(f"python3 scripts/replay_psp_webhooks.py --event-id {event.pk}")
    assert again.returncode == 0 and "already processed" in again.stdout
    assert Journal.objects.filter(reference="deposit:custody:tx-replay-script").count() == 1
    assert available(player, "USDC") == 4_000_000


def test_db_restore_drill_sh_backs_up_then_restores(player: Any, fund: Any, tmp_path: Path) -> None:
    fund(player, 2_000_000)
    # The restore phase creates and drops a scratch database: a DBA's drill, run with the owner's credentials.
    db = connection.settings_dict
    owner_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    result = seed_script("bash scripts/db_restore_drill.sh", DB_RESTORE_DRILL_DIR=str(tmp_path), DATABASE_URL=owner_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(tmp_path.glob("*.dump")), list(tmp_path.iterdir())
    assert "restore" in result.stdout.lower() and "PASS" in result.stdout


def test_db_restore_drill_sh_runs_only_the_backup_in_production(tmp_path: Path) -> None:
    result = seed_script("bash scripts/db_restore_drill.sh", DB_RESTORE_DRILL_DIR=str(tmp_path), **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(tmp_path.glob("*.dump"))
    assert "restore phase NOT run: ENVIRONMENT=production" in result.stdout
