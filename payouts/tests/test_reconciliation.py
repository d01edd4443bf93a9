"""Reconciliation with the PSP (real SDKs against the stub) and manual resolution from payout_submitted."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from ledger.models import Journal
from ops.approvals import SecondOperatorRequired
from ops.models import AuditRecord
from payouts.errors import InvalidTransition, PspAnswerPending, ReasonRequired
from payouts.models import PayoutStatusCheck, Withdrawal
from payouts.reconciliation import payouts_to_reconcile
from payouts.selectors import stuck_withdrawals
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request, withdrawal_resolve
from payouts.tests.helpers import destination_for
from webhooks.stub import STUB_CONNECTED_ACCOUNT

from .helpers import balances, send_adyen_transfer, send_stripe_payout_event, snapshot

pytestmark = pytest.mark.django_db

AMOUNT_U = 25_000_000
KIND = {"adyen": "adyen_transfer", "stripe": "stripe_payout"}
PAID = {"adyen": "booked", "stripe": "paid"}
FAILED = {"adyen": "failed", "stripe": "failed"}
CANCELLED = {"adyen": "failed", "stripe": "canceled"}  # the PSP stopped the payout at the operator's request


def accepted(stub: Any, player: Any, operator: Any, provider: str) -> tuple[Withdrawal, dict[str, Any]]:
    """A payout the PSP accepted (no webhook yet): payout_submitted with the PSP's reference."""
    withdrawal = withdrawal_request(
        user=player, amount_u=AMOUNT_U, currency="USDC", provider=provider, destination=destination_for(provider)
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operator)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED and withdrawal.psp_reference
    (obj,) = stub.objects(KIND[provider])
    return withdrawal, obj


def reconcile(withdrawal: Withdrawal) -> str:
    out = StringIO()
    call_command("reconcile_payouts", "--withdrawal", str(withdrawal.pk), stdout=out)
    return out.getvalue().strip()


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_accepted_never_confirmed_is_asked_then_resolved_with_four_eyes(
    provider: str,
    stub: Any,
    funded_player: Any,
    finance: Any,
    finance2: Any,
    settings: Any,
    assert_ledger_ok: Any,
) -> None:
    before = balances(funded_player)
    withdrawal, obj = accepted(stub, funded_player, finance, provider)
    settings.FOUR_EYES_THRESHOLDS = {"USDC": "10"}  # resolving this 25 USDC payout needs two operators
    if provider == "stripe":
        # Connect: the money is on the player's connected account; no refund until the transfer is reversed.
        frozen = snapshot()
        with pytest.raises(InvalidTransition, match="a refund would pay twice"):
            withdrawal_resolve(
                withdrawal_id=withdrawal.pk, acting_user=finance2, decision="refund_failed", reason="PSP silent"
            )
        assert snapshot() == frozen
        [transfer] = stub.objects("stripe_transfer")
        stub.reverse_transfer(transfer["id"])  # the operator reversed it at Stripe

    # Not asked yet: resolution from payout_submitted is refused and changes nothing.
    frozen = snapshot()
    with pytest.raises(InvalidTransition, match="reconcile_payouts --withdrawal"):
        withdrawal_resolve(
            withdrawal_id=withdrawal.pk, acting_user=finance2, decision="refund_failed", reason="PSP silent for days"
        )
    assert snapshot() == frozen

    # Ask the PSP (a real status call through the SDK): still pending, recorded, nothing moves.
    assert reconcile(withdrawal) == f"withdrawal {withdrawal.pk}: PSP says pending -> none: no final answer yet"
    # (Stripe: the status call, after the payout worker's transfer lookup; it asks the connected account.)
    gets = [r for r in stub.requests if r.method == "GET" and r.path != "/v1/transfers"]
    assert [r.path.rsplit("/", 1)[-1] for r in gets] == [obj["id"]]
    if provider == "stripe":
        assert gets[0].headers["stripe-account"] == STUB_CONNECTED_ACCOUNT
    check = PayoutStatusCheck.objects.get(withdrawal=withdrawal)
    assert (check.answer, check.psp_reference, check.idempotency_key) == (
        "pending",
        obj["id"],
        withdrawal.idempotency_key,
    )
    assert snapshot()["balances"] == frozen["balances"]

    # Pending (in transit) is not final: the PSP may still pay, so a refund now could pay twice. Refused, even
    # days after the submission, and nothing changes.
    settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = 0
    frozen = snapshot()
    with pytest.raises(PspAnswerPending, match="cannot be refunded"):
        withdrawal_resolve(
            withdrawal_id=withdrawal.pk,
            acting_user=finance,
            decision="refund_failed",
            reason="PSP says pending for 3 days; bank confirms nothing arrived",
        )
    assert snapshot() == frozen

    # The operator has the PSP cancel the payout; asked again, it says failed (final): payout_failed, funds held.
    stub.set_object_status(obj["id"], CANCELLED[provider])
    assert reconcile(withdrawal) == f"withdrawal {withdrawal.pk}: PSP says failed -> payout_failed"
    assert snapshot()["balances"] == frozen["balances"]

    # Now the operators may resolve it: a reason is required, then two different operators.
    with pytest.raises(ReasonRequired):
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason=" ")
    withdrawal_resolve(
        withdrawal_id=withdrawal.pk,
        acting_user=finance,
        decision="refund_failed",
        reason="PSP cancelled it after 3 days pending; bank confirms nothing arrived",
    )
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_FAILED  # one sign-off
    with pytest.raises(SecondOperatorRequired):
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason="again")
    withdrawal_resolve(
        withdrawal_id=withdrawal.pk,
        acting_user=finance2,
        decision="refund_failed",
        reason="confirmed with the bank, ticket 42",
    )
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.REFUNDED
    assert balances(funded_player) == before
    assert Journal.objects.filter(reference__startswith=f"withdrawal:{withdrawal.pk}:").count() == 2  # hold, release
    record = AuditRecord.objects.get(action="payouts.withdrawal.refund_failed")
    assert (record.from_state, record.to_state) == ("payout_failed", "refunded")
    # The checker's row carries the checker's own reason; the maker's goes with it (and is on the maker's row).
    assert (record.actor_label, record.reason) == (finance2.email, "confirmed with the bank, ticket 42")
    assert record.data["proposal_reason"] == "PSP cancelled it after 3 days pending; bank confirms nothing arrived"
    assert record.data["approved_by"] == finance2.email
    assert reconcile(withdrawal).endswith("nothing to reconcile")  # money moved once
    assert_ledger_ok()


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_a_final_paid_answer_applies_the_webhook_transition_once(
    provider: str, stub: Any, funded_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    before = balances(funded_player)
    withdrawal, obj = accepted(stub, funded_player, finance, provider)
    stub.set_object_status(obj["id"], PAID[provider])
    frozen = snapshot()
    out = StringIO()
    call_command("reconcile_payouts", "--withdrawal", str(withdrawal.pk), "--dry-run", stdout=out)
    assert out.getvalue().strip().endswith("PSP says paid -> dry run: would be marked paid (held funds burned)")
    assert snapshot() == frozen and not PayoutStatusCheck.objects.exists()
    assert reconcile(withdrawal).endswith("PSP says paid -> paid")
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert balances(funded_player).held_u == 0
    assert balances(funded_player).available_u == before.available_u - AMOUNT_U
    assert Journal.objects.get(reference=f"withdrawal:{withdrawal.pk}:payout").type == "payout"
    assert AuditRecord.objects.get(action="payouts.withdrawal.mark_paid").actor_label == "payout-reconciler"
    # The late webhook and a second run change nothing.
    if provider == "adyen":
        assert send_adyen_transfer({**obj, "status": "booked"}, "booked").json()["result"] == "already paid"
    else:
        assert send_stripe_payout_event(obj, "payout.paid").json()["result"] == "already paid"
    assert reconcile(withdrawal).endswith("nothing to reconcile")
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").count() == 1
    assert_ledger_ok()


def test_a_final_failed_answer_goes_to_manual_review_with_funds_held(
    stub: Any, funded_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    withdrawal, obj = accepted(stub, funded_player, finance, "adyen")
    stub.set_object_status(obj["id"], FAILED["adyen"])
    assert reconcile(withdrawal).endswith("PSP says failed -> payout_failed")
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_FAILED
    assert balances(funded_player).held_u == AMOUNT_U
    assert_ledger_ok()


@pytest.mark.parametrize(
    ("status", "amount_u", "why"),
    [
        ("mystery", AMOUNT_U, "unknown"),
        ("booked", AMOUNT_U + 1, "PSP amount"),
    ],
)
def test_unknown_or_contradictory_answer_goes_to_manual_review_with_evidence(
    status: str,
    amount_u: int,
    why: str,
    stub: Any,
    funded_player: Any,
    finance: Any,
    assert_ledger_ok: Any,
    monkeypatch: Any,
) -> None:
    withdrawal, obj = accepted(stub, funded_player, finance, "adyen")
    stub.set_object_status(obj["id"], status)
    if amount_u != AMOUNT_U:  # the PSP reports another amount than we sent
        stub._state._objects[obj["id"]][1]["amount"]["value"] = amount_u
    out = reconcile(withdrawal)
    assert "manual review (payout_failed)" in out and why in out
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED
    record = AuditRecord.objects.get(action="payouts.withdrawal.mark_failed")
    assert record.reason.startswith("manual review:") and record.data["evidence"]["transfer"]["id"] == obj["id"]
    assert balances(funded_player).held_u == AMOUNT_U  # nothing released automatically
    assert_ledger_ok()


def test_a_payout_that_never_reached_the_psp_is_not_found_by_key(stub: Any, funded_player: Any, finance: Any) -> None:
    stub.set_mode("adyen_transfer", "fail", times=1)  # 500: nothing stored at the PSP
    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "error"
    out = reconcile(withdrawal)
    assert "PSP says not_found -> manual review" in out
    (get,) = [r for r in stub.requests if r.method == "GET"]
    assert get.path.endswith("/transfers")  # looked up by our reference, since we never learnt an id
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_FAILED


def test_psp_unreachable_is_recorded_and_changes_nothing(
    stub: Any, funded_player: Any, finance: Any, settings: Any
) -> None:
    withdrawal, _ = accepted(stub, funded_player, finance, "stripe")
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"
    frozen = snapshot()
    with pytest.raises(CommandError, match="could not ask the PSP about 1 payout"):
        reconcile(withdrawal)
    assert PayoutStatusCheck.objects.get().answer == "error"
    assert snapshot() == frozen
    # An error is not an answer: resolution stays refused.
    with pytest.raises(InvalidTransition):
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="confirm_sent", reason="x")


def test_resolution_without_an_answer_after_the_configured_time(
    stub: Any, funded_player: Any, finance: Any, finance2: Any, settings: Any, assert_ledger_ok: Any
) -> None:
    withdrawal, _ = accepted(stub, funded_player, finance2, "adyen")
    settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = 60
    Withdrawal.objects.filter(pk=withdrawal.pk).update(state_changed_at=timezone.now() - timedelta(minutes=59))
    frozen = snapshot()
    with pytest.raises(InvalidTransition, match="reconcile_payouts --withdrawal"):  # too early, no answer
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance2, decision="confirm_sent", reason="x")
    assert snapshot() == frozen
    Withdrawal.objects.filter(pk=withdrawal.pk).update(state_changed_at=timezone.now() - timedelta(minutes=61))
    for operator in (finance2, finance):  # the PSP never said paid: two operators
        withdrawal_resolve(
            withdrawal_id=withdrawal.pk,
            acting_user=operator,
            decision="confirm_sent",
            reason="bank statement shows the transfer",
        )
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAID
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").count() == 1
    assert_ledger_ok()


def test_beat_selection_detector_and_metric(stub: Any, funded_player: Any, finance: Any, settings: Any) -> None:
    withdrawal, _ = accepted(stub, funded_player, finance, "adyen")
    assert payouts_to_reconcile() == []  # too fresh
    Withdrawal.objects.filter(pk=withdrawal.pk).update(state_changed_at=timezone.now() - timedelta(minutes=6))
    assert payouts_to_reconcile() == [withdrawal.pk]
    assert stuck_withdrawals() == []  # accepted: not stuck until STUCK_UNCONFIRMED_AFTER_MINUTES
    settings.STUCK_UNCONFIRMED_AFTER_MINUTES = 5
    (finding,) = stuck_withdrawals()
    assert finding.detail.endswith("accepted by the PSP, never confirmed")
    text = Client().get("/metrics").content.decode()
    assert 'payout_attempts_total{outcome="accepted",provider="adyen"} 1.0' in text
    assert 'payout_attempts_total{outcome="declined",provider="stripe"} 0.0' in text


def test_resolve_api_from_payout_submitted(
    stub: Any,
    funded_player: Any,
    finance: Any,
    finance2: Any,
    settings: Any,
    api_client_for: Any,
    assert_ledger_ok: Any,
) -> None:
    withdrawal, obj = accepted(stub, funded_player, finance, "stripe")
    settings.FOUR_EYES_THRESHOLDS = {"USDC": "10"}
    body = {"decision": "confirm_sent", "reason": "bank statement shows it"}
    refused = api_client_for(finance).post(f"/v1/payouts/{withdrawal.pk}/resolve", body, format="json")
    assert refused.status_code == 409 and refused.json()["type"].endswith("payouts/invalid-transition")
    assert "reconcile_payouts --withdrawal" in refused.json()["detail"]
    reconcile(withdrawal)  # the PSP says pending: confirming it sent stays refused
    pending = api_client_for(finance).post(f"/v1/payouts/{withdrawal.pk}/resolve", body, format="json")
    assert pending.status_code == 409 and pending.json()["type"] == "payouts/psp-answer-pending"
    settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = 0  # no, not even once the no-answer delay has passed
    assert api_client_for(finance).post(f"/v1/payouts/{withdrawal.pk}/resolve", body, format="json").status_code == 409
    stub.set_object_status(obj["id"], "failed")  # the PSP's final word: failed (the bank says otherwise)
    reconcile(withdrawal)
    first = api_client_for(finance).post(f"/v1/payouts/{withdrawal.pk}/resolve", body, format="json")
    assert first.status_code == 202 and first.json()["state"] == "payout_failed"
    second = api_client_for(finance2).post(f"/v1/payouts/{withdrawal.pk}/resolve", body, format="json")
    assert second.status_code == 200 and second.json()["state"] == "paid"
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").count() == 1
    assert_ledger_ok()
