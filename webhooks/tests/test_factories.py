"""Each deposit and webhook-event factory trait reaches its state through the services, the ledger balanced."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.models import Journal
from webhooks.models import Deposit, WebhookEvent
from webhooks.tests.factories import DepositFactory, WebhookEventFactory

from .helpers import available

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("trait", "status", "balance_u", "journals"),
    [
        (None, Deposit.Status.PENDING, 0, []),
        ("credited", Deposit.Status.CREDITED, 2500, ["deposit"]),
        ("failed", Deposit.Status.FAILED, 0, []),
        ("refunded", Deposit.Status.CREDITED, 0, ["deposit", "deposit_refund"]),
    ],
)
def test_each_deposit_trait(
    trait: str | None, status: str, balance_u: int, journals: list[str], assert_ledger_ok: Any
) -> None:
    deposit = DepositFactory.create(**({trait: True} if trait else {}))

    assert deposit.status == status
    assert available(deposit.user, "USD") == balance_u
    assert list(Journal.objects.order_by("pk").values_list("type", flat=True)) == journals
    if status == Deposit.Status.CREDITED:
        assert deposit.journal is not None
        assert deposit.journal.reference == f"deposit:stripe:{deposit.psp_id}"
        assert deposit.psp_payment_reference == deposit.psp_id
    else:
        assert deposit.journal is None
    assert deposit.refunded_u == (2500 if trait == "refunded" else 0)
    assert_ledger_ok()


@pytest.mark.parametrize(
    ("trait", "status", "deposit_status", "balance_u"),
    [
        (None, WebhookEvent.Status.RECEIVED, Deposit.Status.PENDING, 0),
        ("processed", WebhookEvent.Status.PROCESSED, Deposit.Status.CREDITED, 2500),
        ("flagged", WebhookEvent.Status.FLAGGED, Deposit.Status.PENDING, 0),
        ("ignored", WebhookEvent.Status.IGNORED, Deposit.Status.PENDING, 0),
        ("failed", WebhookEvent.Status.FAILED, Deposit.Status.PENDING, 0),
    ],
)
def test_each_webhook_event_trait(
    trait: str | None, status: str, deposit_status: str, balance_u: int, assert_ledger_ok: Any
) -> None:
    event = WebhookEventFactory.create(**({trait: True} if trait else {}))

    assert event.status == status
    deposit = Deposit.objects.get()
    assert deposit.status == deposit_status
    assert available(deposit.user, "USD") == balance_u
    if trait == "processed":
        assert event.deposit == deposit and event.journal_reference == f"deposit:stripe:{deposit.psp_id}"
    if trait == "flagged":
        assert "nothing credited" in event.reason
    assert_ledger_ok()


def test_deposits_for_a_given_player_add_up(player: Any, assert_ledger_ok: Any) -> None:
    DepositFactory.create_batch(3, user=player, credited=True, amount_u=1000)

    assert available(player, "USD") == 3000
    assert Journal.objects.filter(type="deposit").count() == 3
    assert_ledger_ok()


def test_only_the_services_set_a_deposits_outcome(db: Any) -> None:
    with pytest.raises(TypeError, match="services set the rest"):
        DepositFactory.create(status=Deposit.Status.CREDITED)
