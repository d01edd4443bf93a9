"""Resolution follows the PSP's word (issue 20, item 4).

`confirm_sent` and `refund_failed` are refused while the PSP's latest answer about the current attempt is pending
or in transit (the PSP may still pay: a refund then would pay twice), on every path (the service, `POST /v1/payouts/{id}/resolve`, the admin's button, the `resolve` command);
it is allowed after a terminal answer, or after PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES with no answer; and it
needs two operators, whatever the amount, when the PSP never said paid.
"""

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
from ops.models import AuditRecord, Proposal
from payouts.errors import PspAnswerPending
from payouts.models import PayoutStatusCheck, Withdrawal
from payouts.reconciliation import psp_said_paid, psp_word
from payouts.services import RESOLVE_KIND, payout_submit, withdrawal_approve, withdrawal_request, withdrawal_resolve

from .helpers import balances, destination_for, send_adyen_transfer, snapshot

pytestmark = pytest.mark.django_db

AMOUNT_U = 25_000_000
KIND = {"adyen": "adyen_transfer", "stripe": "stripe_payout"}
PENDING_TYPE = "payouts/psp-answer-pending"


@pytest.fixture(autouse=True)
def one_operator_below_a_high_threshold(settings: Any) -> None:
    """The threshold is far above these payouts: only the PSP's word can ask for a second operator."""
    settings.FOUR_EYES_THRESHOLDS = {"USDC": "1000000", "USD": "1000000"}


def accepted(stub: Any, player: Any, operator: Any, provider: str) -> tuple[Withdrawal, dict[str, Any]]:
    """A payout the PSP accepted and never confirmed (payout_submitted)."""
    withdrawal = withdrawal_request(
        user=player, amount_u=AMOUNT_U, currency="USDC", provider=provider, destination=destination_for(provider)
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operator)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    (obj,) = stub.objects(KIND[provider])
    return withdrawal, obj


def reconcile(withdrawal: Withdrawal) -> str:
    out = StringIO()
    call_command("reconcile_payouts", "--withdrawal", str(withdrawal.pk), stdout=out)
    return out.getvalue().strip()


def resolve_command(*args: str) -> str:
    out = StringIO()
    call_command("resolve", *args, stdout=out)
    return out.getvalue()


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(("provider", "psp_status"), [("stripe", "in_transit"), ("adyen", "received")])
def test_confirm_sent_on_a_pending_answer_is_refused_on_every_path(
    provider: str,
    psp_status: str,
    stub: Any,
    funded_player: Any,
    finance: Any,
    finance2: Any,
    settings: Any,
    api_client_for: Any,
    assert_ledger_ok: Any,
) -> None:
    withdrawal, obj = accepted(stub, funded_player, finance, provider)
    stub.set_object_status(obj["id"], psp_status)
    assert reconcile(withdrawal) == f"withdrawal {withdrawal.pk}: PSP says pending -> none: no final answer yet"
    word = psp_word(Withdrawal.objects.get(pk=withdrawal.pk))
    assert word is not None and word.pending and word.source.startswith("status call")
    # Even long after the submission: the PSP answered, and its answer is not final.
    settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = 0
    held = balances(funded_player)
    frozen = snapshot()
    reason = "the customer says the money arrived"

    with pytest.raises(PspAnswerPending, match="is pending"):
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="confirm_sent", reason=reason)
    response = api_client_for(finance2).post(
        f"/v1/payouts/{withdrawal.pk}/resolve", {"decision": "confirm_sent", "reason": reason}, format="json"
    )
    assert response.status_code == 409 and response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == PENDING_TYPE and "reconcile_payouts" in response.json()["detail"]
    page = login(finance).post(
        f"/admin/payouts/withdrawal/{withdrawal.pk}/act/confirm_sent/", {"reason": reason}, follow=True
    )
    assert page.status_code == 200 and "is pending" in page.content.decode()
    with pytest.raises(CommandError) as refused:
        resolve_command(str(withdrawal.pk), "confirm_sent", "--reason", reason, "--operator", finance.email)
    line = str(refused.value)
    assert line.startswith(f"refused: {PENDING_TYPE}: ") and "\n" not in line

    assert snapshot() == frozen and balances(funded_player) == held
    assert not Proposal.objects.filter(kind=RESOLVE_KIND).exists()
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_SUBMITTED
    assert_ledger_ok()


def test_a_refund_on_a_pending_answer_is_refused_on_every_path_until_the_psp_says_failed(
    stub: Any,
    funded_player: Any,
    finance: Any,
    finance2: Any,
    settings: Any,
    api_client_for: Any,
    assert_ledger_ok: Any,
) -> None:
    """Refunding while the PSP may still pay would pay the player twice (the held funds back, and the PSP's money)."""
    before = balances(funded_player)
    withdrawal, obj = accepted(stub, funded_player, finance, "adyen")
    stub.set_object_status(obj["id"], "received")  # Adyen: in transit
    assert reconcile(withdrawal).endswith("PSP says pending -> none: no final answer yet")
    settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = 0  # long after the submission: the PSP's word still rules
    held = balances(funded_player)
    frozen = snapshot()
    reason = "the PSP has said pending for 3 days"

    with pytest.raises(PspAnswerPending, match="cannot be refunded"):
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason=reason)
    response = api_client_for(finance2).post(
        f"/v1/payouts/{withdrawal.pk}/resolve", {"decision": "refund_failed", "reason": reason}, format="json"
    )
    assert response.status_code == 409 and response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == PENDING_TYPE and "cancel it at the PSP" in response.json()["detail"]
    page = login(finance).post(
        f"/admin/payouts/withdrawal/{withdrawal.pk}/act/refund_failed/", {"reason": reason}, follow=True
    )
    assert page.status_code == 200 and "cannot be refunded" in page.content.decode()
    with pytest.raises(CommandError) as refused:
        resolve_command(str(withdrawal.pk), "refund_failed", "--reason", reason, "--operator", finance.email)
    line = str(refused.value)
    assert line.startswith(f"refused: {PENDING_TYPE}: ") and "\n" not in line
    assert snapshot() == frozen and balances(funded_player) == held
    assert not Proposal.objects.filter(kind=RESOLVE_KIND).exists()
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_SUBMITTED

    # The operator has the PSP cancel it; asked again, the PSP says failed (final): now the refund may go ahead.
    stub.set_object_status(obj["id"], "failed")
    assert reconcile(withdrawal).endswith("PSP says failed -> payout_failed")
    withdrawal_resolve(
        withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason="cancelled at the PSP"
    )
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.REFUNDED
    assert balances(funded_player) == before
    assert not Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").exists()
    assert_ledger_ok()


def test_a_proposal_made_before_the_psp_said_pending_cannot_be_applied(
    stub: Any, funded_player: Any, finance: Any, finance2: Any, settings: Any, assert_ledger_ok: Any
) -> None:
    withdrawal, obj = accepted(stub, funded_player, finance, "adyen")
    settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = 60
    Withdrawal.objects.filter(pk=withdrawal.pk).update(state_changed_at=timezone.now() - timedelta(minutes=61))
    # No answer for an hour: allowed, but the PSP never said paid, so it is only a proposal.
    withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="confirm_sent", reason="silent")
    proposal = Proposal.objects.get(kind=RESOLVE_KIND, state=Proposal.State.PENDING)
    assert proposal.needs_second_operator
    # Then the PSP is asked, and says pending: the second operator's approval is refused on every path.
    reconcile(withdrawal)
    frozen = snapshot()
    with pytest.raises(PspAnswerPending):
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance2, decision="confirm_sent", reason="ok")
    with pytest.raises(CommandError, match=PENDING_TYPE):
        resolve_command("--approve", str(proposal.pk), "--reason", "ok", "--operator", finance2.email)
    assert snapshot() == frozen
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.PENDING
    assert_ledger_ok()


def test_after_a_terminal_answer_confirm_sent_needs_two_operators_when_the_psp_never_said_paid(
    stub: Any, funded_player: Any, finance: Any, finance2: Any, assert_ledger_ok: Any
) -> None:
    before = balances(funded_player)
    withdrawal, obj = accepted(stub, funded_player, finance, "stripe")
    stub.set_object_status(obj["id"], "failed")
    assert reconcile(withdrawal).endswith("PSP says failed -> payout_failed")
    assert not psp_said_paid(Withdrawal.objects.get(pk=withdrawal.pk))

    out = resolve_command(
        str(withdrawal.pk), "confirm_sent", "--reason", "bank shows it left", "--operator", finance.email
    )
    proposal = Proposal.objects.get(kind=RESOLVE_KIND, state=Proposal.State.PENDING)
    assert f"Proposal {proposal.pk}" in out and f"resolve --approve {proposal.pk}" in out
    assert proposal.needs_second_operator  # 25 USDC is far below the threshold
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_FAILED
    assert balances(funded_player).held_u == AMOUNT_U

    frozen = snapshot()
    with pytest.raises(SecondOperatorRequired):  # the same operator twice
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="confirm_sent", reason="again")
    with pytest.raises(CommandError, match="approvals/second-operator-required"):
        resolve_command("--approve", str(proposal.pk), "--operator", finance.email)
    assert snapshot() == frozen

    with pytest.raises(CommandError, match="^refused: approvals/reason-required: .*as the second operator"):
        resolve_command("--approve", str(proposal.pk), "--operator", finance2.email)
    assert snapshot() == frozen
    out = resolve_command("--approve", str(proposal.pk), "--reason", "statement line 12", "--operator", finance2.email)
    assert f"Withdrawal {withdrawal.pk} is paid." in out
    record = AuditRecord.objects.get(action="payouts.withdrawal.confirm_sent")
    assert (record.actor_label, record.reason, record.data["proposal_reason"]) == (
        finance2.email,
        "statement line 12",
        "bank shows it left",
    )
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").count() == 1
    after = balances(funded_player)
    assert after.held_u == 0 and after.available_u == before.available_u - AMOUNT_U
    assert_ledger_ok()


def test_one_operator_may_confirm_what_the_psp_said_was_paid(
    stub: Any, funded_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    withdrawal, obj = accepted(stub, funded_player, finance, "adyen")
    stub.set_object_status(obj["id"], "mystery")  # an unknown status: manual review, funds held
    assert "manual review (payout_failed)" in reconcile(withdrawal)
    assert not psp_said_paid(Withdrawal.objects.get(pk=withdrawal.pk))
    # Then the PSP's webhook says booked (paid): stored for review, not applied to a payout_failed withdrawal.
    result = send_adyen_transfer({**obj, "status": "booked"}, "booked").json()["result"]
    assert result.startswith("review: PSP says paid")
    withdrawal.refresh_from_db()
    word = psp_word(withdrawal)
    assert word is not None and word.answer == "paid" and word.source.startswith("webhook")
    withdrawal_resolve(
        withdrawal_id=withdrawal.pk, acting_user=finance, decision="confirm_sent", reason="the PSP's webhook says paid"
    )
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAID
    proposal = Proposal.objects.get(kind=RESOLVE_KIND)
    assert proposal.state == Proposal.State.APPLIED and not proposal.needs_second_operator
    assert PayoutStatusCheck.objects.get().answer == "unknown"
    assert_ledger_ok()
