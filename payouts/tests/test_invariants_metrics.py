"""The held_equals_withdrawals invariant and the manual-review metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from ledger.models import Account
from ledger.reconciliation import invariant_names
from ops.metrics import DatabaseCollector
from payouts.invariants import check_held_equals_withdrawals
from payouts.services import withdrawal_request, withdrawal_resolve
from payouts.tests.helpers import destination_for

from .factories import WithdrawalFactory


def test_invariant_is_registered_and_holds(funded_player: Any, assert_ledger_ok: Any) -> None:
    assert "held_equals_withdrawals" in invariant_names()
    withdrawal_request(
        user=funded_player, amount_u=1_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    assert_ledger_ok()


def test_invariant_catches_a_held_balance_without_withdrawal(funded_player: Any, db_owner: Any) -> None:
    withdrawal_request(
        user=funded_player, amount_u=1_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    # Simulate corruption: the stored held balance drifts from the withdrawals (as the owner: the app role cannot).
    with db_owner():
        Account.objects.filter(owner=funded_player, kind=Account.Kind.USER_HELD).update(balance_u=1_500_000)
    breaches = list(check_held_equals_withdrawals())
    assert len(breaches) == 1
    assert "holds 1500000 but withdrawals in held states total 1000000" in breaches[0].detail


def scrape() -> str:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    return generate_latest(registry).decode()


def test_manual_review_metrics(stub: Any, finance: Any, finance2: Any) -> None:
    ids = [withdrawal.pk for withdrawal in WithdrawalFactory.create_batch(3, failed=True, psp=stub)]
    text = scrape()
    assert "payout_manual_review_queue_size 3.0" in text
    assert 'payout_manual_review_transitions_total{action="refund_failed"} 0.0' in text

    withdrawal_resolve(withdrawal_id=ids[0], acting_user=finance, decision="refund_failed", reason="failed")
    for operator in (finance, finance2):  # the PSP never said paid: two operators
        withdrawal_resolve(withdrawal_id=ids[1], acting_user=operator, decision="confirm_sent", reason="sent")
    text = scrape()
    assert "payout_manual_review_queue_size 1.0" in text
    assert 'payout_manual_review_transitions_total{action="refund_failed"} 1.0' in text
    assert 'payout_manual_review_transitions_total{action="confirm_sent"} 1.0' in text
    assert 'payout_manual_review_transitions_total{action="retry"} 0.0' in text
