"""Operator tools: read-only admin pages with a replay action, `replay_psp_webhooks`, metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.urls import reverse

from ops.models import AuditRecord
from webhooks import processing
from webhooks.models import Deposit, WebhookEvent
from webhooks.notices import Kind

from .helpers import (
    STRIPE_URL,
    available,
    payment_intent,
    pending_deposit,
    snapshot,
    stripe_delivery,
)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def failed_event(
    player: Any, deliver: Any, inline_worker: list[int], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> WebhookEvent:
    """A confirmation whose processing failed on every attempt (the database was down)."""
    settings.WEBHOOK_MAX_ATTEMPTS = 2

    def database_down(notice: Any, event: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patch:
        patch.setitem(processing._HANDLERS, Kind.CREDIT, database_down)
        deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(pending_deposit(player)))[1])
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    return event


# --- replay_psp_webhooks ---------------------------------------------------------------------------


def test_replay_command_credits_a_failed_event_once(failed_event: WebhookEvent, assert_ledger_ok: Any) -> None:
    out = StringIO()

    call_command("replay_psp_webhooks", "--event-id", str(failed_event.pk), stdout=out)
    call_command("replay_psp_webhooks", "--event-id", failed_event.event_id, stdout=out)  # the PSP's id works too

    failed_event.refresh_from_db()
    assert failed_event.status == WebhookEvent.Status.PROCESSED
    assert available(Deposit.objects.get().user, "USD") == 2500
    assert "processed. Credited 25.00 USD" in out.getvalue()
    assert "already processed; nothing done" in out.getvalue()
    audit = AuditRecord.objects.filter(action="webhooks.replay").order_by("id")
    assert [(a.from_state, a.to_state) for a in audit] == [("failed", "processed")]
    assert audit[0].actor_label.startswith("cli:")
    assert_ledger_ok()


def test_replay_failed_replays_every_failed_event(failed_event: WebhookEvent) -> None:
    out = StringIO()

    call_command("replay_psp_webhooks", "--failed", stdout=out)
    before = snapshot()
    call_command("replay_psp_webhooks", "--failed", stdout=out)

    assert WebhookEvent.objects.filter(status="failed").count() == 0
    assert "replayed 1 event(s), 0 still need attention" in out.getvalue()
    assert "replayed 0 event(s)" in out.getvalue()
    assert snapshot() == before


def test_replay_dry_run_changes_nothing(failed_event: WebhookEvent) -> None:
    before = snapshot()
    out = StringIO()

    call_command("replay_psp_webhooks", "--failed", "--dry-run", stdout=out)

    assert "would replay event" in out.getvalue()
    assert snapshot() == before


def test_replay_unknown_id_is_one_readable_line() -> None:
    with pytest.raises(CommandError) as caught:
        call_command("replay_psp_webhooks", "--event-id", "evt_nope")

    assert str(caught.value) == "No webhook event with id 'evt_nope'."


@pytest.mark.django_db(transaction=True)
def test_replay_unknown_id_exits_non_zero() -> None:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "replay_psp_webhooks", "--event-id", "999999"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == "CommandError: No webhook event with id '999999'."


# --- Admin -----------------------------------------------------------------------------------------


def test_admin_pages_are_read_only(client: Any, make_staff: Any, failed_event: WebhookEvent) -> None:
    client.force_login(make_staff(role="finance"))
    deposit = Deposit.objects.get()

    for name, obj in (("webhookevent", failed_event), ("deposit", deposit)):
        assert client.get(reverse(f"admin:webhooks_{name}_changelist")).status_code == 200
        page = client.get(reverse(f"admin:webhooks_{name}_change", args=[obj.pk]))
        assert page.status_code == 200
        assert b'name="_save"' not in page.content
        assert client.get(reverse(f"admin:webhooks_{name}_add")).status_code == 403
        assert client.post(reverse(f"admin:webhooks_{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    page = client.get(reverse("admin:webhooks_webhookevent_change", args=[failed_event.pk])).content.decode()
    assert "OperationalError" in page and "payment_intent.succeeded" in page
    before = Deposit.objects.values_list("amount_u", "status").get(pk=deposit.pk)
    client.post(reverse("admin:webhooks_deposit_change", args=[deposit.pk]), {"amount_u": 999999, "status": "credited"})
    assert Deposit.objects.values_list("amount_u", "status").get(pk=deposit.pk) == before


def test_admin_replay_action_for_finance(client: Any, make_staff: Any, failed_event: WebhookEvent) -> None:
    operator = make_staff(role="finance")
    client.force_login(operator)
    url = reverse("admin:webhooks_webhookevent_changelist")

    for _ in range(2):
        response = client.post(url, {"action": "replay_events", "_selected_action": [failed_event.pk]}, follow=True)
        assert response.status_code == 200

    failed_event.refresh_from_db()
    assert failed_event.status == WebhookEvent.Status.PROCESSED
    assert available(Deposit.objects.get().user, "USD") == 2500
    assert AuditRecord.objects.filter(action="webhooks.replay", actor=operator).count() == 2


def test_support_cannot_replay(client: Any, make_staff: Any, failed_event: WebhookEvent) -> None:
    client.force_login(make_staff(role="support"))
    url = reverse("admin:webhooks_webhookevent_changelist")

    assert client.get(url).status_code == 200
    client.post(url, {"action": "replay_events", "_selected_action": [failed_event.pk]})

    failed_event.refresh_from_db()
    assert failed_event.status == WebhookEvent.Status.FAILED


# --- Metrics ---------------------------------------------------------------------------------------


def test_failed_events_are_counted(client: Any, failed_event: WebhookEvent) -> None:
    text = client.get("/metrics").content.decode()

    assert 'webhook_events_total{provider="stripe",status="failed"} 1.0' in text
    assert 'worker_runs_total{result="failed",worker="webhooks"} 1.0' in text
    assert 'worker_runs_total{result="retry",worker="webhooks"} 1.0' in text


# --- Wiring ----------------------------------------------------------------------------------------


def test_beat_schedule_names_registered_tasks() -> None:
    from config.celery_app import app

    scheduled = settings.CELERY_BEAT_SCHEDULE["webhooks-retry-pending"]["task"]
    assert scheduled == "webhooks.tasks.retry_stale_events"
    assert {scheduled, "webhooks.tasks.process_webhook_event"} <= set(app.tasks.keys())


def test_invariant_catches_a_credited_deposit_without_its_credit(player: Any, fund: Any) -> None:
    from ledger.reconciliation import ledger_breaches

    other_journal = fund(player, 1)  # a deposit journal of another amount, to another reference
    deposit = pending_deposit(player, currency="USDC", amount_u=5_000_000)
    Deposit.objects.filter(pk=deposit.pk).update(status="credited", journal=other_journal)

    breaches = [b for b in ledger_breaches() if b.invariant == "deposit_credited_once"]

    assert len(breaches) == 1 and deposit.reference in breaches[0].detail


def test_admin_deposit_title_is_in_major_units(client: Any, make_staff: Any, player: Any) -> None:
    """The change page's title (`__str__`) writes the amount as the amount field does (`ledger.money`)."""
    client.force_login(make_staff(role="finance"))
    deposit = pending_deposit(player)
    money = "$25.00"  # 2500 cents
    title = f"{deposit.provider}:{deposit.reference} {money} (pending)"
    assert str(deposit) == title
    page = client.get(reverse("admin:webhooks_deposit_change", args=[deposit.pk])).content.decode()
    assert f"<h2>{title}</h2>" in page and f'<span class="money">{money}</span>' in page
    assert f" {deposit.amount_u} " not in page
