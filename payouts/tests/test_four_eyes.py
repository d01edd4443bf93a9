"""Four eyes per currency: one operator is enough up to the threshold, two above it, never the same one twice.

The thresholds are money in major units per currency (`FOUR_EYES_THRESHOLDS`); the same maker-checker
serves withdrawal approval, manual payout resolution and ledger adjustments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from ledger.decisions import adjustment_propose
from ledger.services import house_account, user_account
from ops.approvals import ReasonRequired, SecondOperatorRequired, decision_approve, parse_thresholds
from ops.models import AuditRecord, Proposal
from payouts.models import Withdrawal
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request, withdrawal_resolve
from payouts.tests.helpers import destination_for

from .helpers import snapshot

pytestmark = pytest.mark.django_db

THRESHOLDS = {"USD": "10000.00", "EUR": "10000.00", "USDC": "10000"}
# (currency, threshold in minor units): $10,000.00, EUR 10,000.00, 10,000 USDC.
LIMITS = [("USD", 1_000_000), ("EUR", 1_000_000), ("USDC", 10_000_000_000)]
SIDES = [("at the threshold", 0, 1), ("just over", 1, 2)]  # (label, minor units above, operators needed)


@pytest.fixture(autouse=True)
def thresholds(settings: Any) -> None:
    settings.FOUR_EYES_THRESHOLDS = THRESHOLDS


def requested(player: Any, fund: Callable[..., Any], currency: str, amount_u: int) -> Withdrawal:
    fund(player, amount_u, currency)
    return withdrawal_request(
        user=player, amount_u=amount_u, currency=currency, provider="adyen", destination=destination_for("adyen")
    )


def approve_fully(withdrawal: Withdrawal, operators: list[Any]) -> None:
    for operator in operators:
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operator, reason=f"checked by {operator.email}")


@pytest.mark.parametrize(("currency", "limit_u"), LIMITS)
@pytest.mark.parametrize(("side", "over_u", "needed"), SIDES)
def test_approval(
    currency: str,
    limit_u: int,
    side: str,
    over_u: int,
    needed: int,
    player: Any,
    fund: Callable[..., Any],
    finance: Any,
    finance2: Any,
) -> None:
    withdrawal = requested(player, fund, currency, limit_u + over_u)
    after = withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    if needed == 1:
        assert after.state == Withdrawal.State.APPROVED
        assert Proposal.objects.get().needs_second_operator is False
        return
    assert after.state == Withdrawal.State.REQUESTED
    frozen = snapshot()
    with pytest.raises(SecondOperatorRequired):
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    assert snapshot() == frozen
    with pytest.raises(ReasonRequired, match="as the second operator"):  # the first may leave it out; not the second
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance2, reason=" ")
    assert snapshot() == frozen
    after = withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance2, reason="KYC file matches")
    assert after.state == Withdrawal.State.APPROVED
    proposal = Proposal.objects.get()
    assert (proposal.proposed_by, proposal.decided_by, proposal.state) == (finance, finance2, "applied")
    assert (proposal.reason, proposal.decision_reason) == ("approved", "KYC file matches")
    checker_rows = AuditRecord.objects.filter(actor=finance2)
    assert {(r.action, r.reason) for r in checker_rows} == {
        ("approvals.apply", "KYC file matches"),
        ("payouts.withdrawal.approve", "KYC file matches"),
    }
    assert all(r.data["proposal_reason"] == "approved" for r in checker_rows)


@pytest.mark.parametrize(("currency", "limit_u"), LIMITS)
@pytest.mark.parametrize(("side", "over_u", "needed"), SIDES)
def test_resolution(
    currency: str,
    limit_u: int,
    side: str,
    over_u: int,
    needed: int,
    stub: Any,
    player: Any,
    fund: Callable[..., Any],
    finance: Any,
    finance2: Any,
    assert_ledger_ok: Any,
) -> None:
    amount_u = limit_u + over_u
    withdrawal = requested(player, fund, currency, amount_u)
    approve_fully(withdrawal, [finance, finance2][:needed])
    stub.set_mode("adyen_transfer", "decline", times=1)
    payout_submit(withdrawal_id=withdrawal.pk)
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_FAILED
    held = user_account(user=player, currency=currency, kind="user_held")

    after = withdrawal_resolve(
        withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason="PSP confirmed the failure"
    )
    if needed == 2:
        assert after.state == Withdrawal.State.PAYOUT_FAILED
        frozen = snapshot()
        with pytest.raises(SecondOperatorRequired):
            withdrawal_resolve(
                withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason="again"
            )
        assert snapshot() == frozen
        after = withdrawal_resolve(
            withdrawal_id=withdrawal.pk, acting_user=finance2, decision="refund_failed", reason="agreed"
        )
    assert after.state == Withdrawal.State.REFUNDED
    held.refresh_from_db()
    assert held.balance_u == 0
    assert user_account(user=player, currency=currency).balance_u == amount_u
    assert_ledger_ok()


@pytest.mark.parametrize(("currency", "limit_u"), LIMITS)
@pytest.mark.parametrize(("side", "over_u", "needed"), SIDES)
def test_adjustment(
    currency: str,
    limit_u: int,
    side: str,
    over_u: int,
    needed: int,
    player: Any,
    fund: Callable[..., Any],
    finance: Any,
    finance2: Any,
    assert_ledger_ok: Any,
) -> None:
    amount_u = limit_u + over_u
    fund(player, amount_u, currency)
    account, house = user_account(user=player, currency=currency), house_account(currency=currency)
    proposal = adjustment_propose(
        legs=[(account.pk, -amount_u), (house.pk, amount_u)], reason="ticket 42", acting_user=finance
    )
    if needed == 2:
        assert proposal.state == Proposal.State.PENDING
        frozen = snapshot()
        with pytest.raises(SecondOperatorRequired):
            decision_approve(proposal_id=proposal.pk, acting_user=finance)
        assert snapshot() == frozen
        with pytest.raises(ReasonRequired):
            decision_approve(proposal_id=proposal.pk, acting_user=finance2)
        assert snapshot() == frozen
        proposal = decision_approve(proposal_id=proposal.pk, acting_user=finance2, reason="matches ticket 42")
        apply = AuditRecord.objects.get(action="approvals.apply")
        assert (apply.actor_label, apply.reason) == (finance2.email, "matches ticket 42")
        assert apply.data["proposal_reason"] == "ticket 42"
    assert proposal.state == Proposal.State.APPLIED
    account.refresh_from_db()
    assert account.balance_u == 0
    assert_ledger_ok()


def test_a_currency_without_a_threshold_always_needs_two(
    settings: Any,
    player: Any,
    fund: Callable[..., Any],
    finance: Any,
    finance2: Any,
) -> None:
    settings.FOUR_EYES_THRESHOLDS = {"USD": "10000.00"}
    withdrawal = requested(player, fund, "EUR", 1)  # one cent
    assert withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance).state == Withdrawal.State.REQUESTED
    after = withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance2, reason="one cent, fine")
    assert after.state == Withdrawal.State.APPROVED


def test_thresholds_convert_exactly_and_refuse_bad_settings() -> None:
    assert parse_thresholds(THRESHOLDS) == {"USD": 1_000_000, "EUR": 1_000_000, "USDC": 10_000_000_000}
    assert parse_thresholds({"USDC": "0.000001", "USD": 5}) == {"USDC": 1, "USD": 500}
    for bad in (
        {"USD": "10.001"},
        {"DOGE": "1"},
        {"USD": "-1"},
        {"USD": "ten"},
        {"USD": True},
        {"USD": 1.5},
        {"USD": "NaN"},
        ["USD"],
    ):
        with pytest.raises(ImproperlyConfigured):
            parse_thresholds(bad)  # type: ignore[arg-type]


def test_the_actor_type_is_checked_where_it_enters(player: Any, fund: Callable[..., Any]) -> None:
    withdrawal = requested(player, fund, "USDC", 1_000_000)
    for actor in ("finance@example.com", None, 42):
        with pytest.raises(TypeError, match="actor"):
            withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=actor)  # type: ignore[arg-type]  # on purpose
    with pytest.raises(TypeError, match="actor"):
        house_account(currency="USDC")  # accounts need no actor; postings do:
        from ledger.services import transfer

        transfer(
            source=user_account(user=player, currency="USDC"),
            destination=house_account(currency="USDC"),
            amount_u=1,
            type="fee",
            reference="no-actor",
            actor="someone",  # type: ignore[arg-type]  # on purpose: a bare string is no actor
        )
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.REQUESTED
