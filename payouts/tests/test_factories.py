"""Each withdrawal factory trait reaches its state through the services, with the money where it belongs."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.models import Journal
from payouts.models import PayoutAttempt, Withdrawal
from payouts.tests.factories import WithdrawalFactory

from .helpers import Balances, balances

pytestmark = pytest.mark.django_db

AMOUNT_U = WithdrawalFactory.amount_u
State = Withdrawal.State


def journal_types(withdrawal: Withdrawal) -> list[str]:
    return list(
        Journal.objects.filter(reference__startswith=f"withdrawal:{withdrawal.pk}:")
        .order_by("pk")
        .values_list("type", flat=True)
    )


@pytest.mark.parametrize(
    ("trait", "state", "held_u", "available_u", "journals"),
    [
        (None, State.REQUESTED, AMOUNT_U, 0, ["withdrawal_hold"]),
        ("approved", State.APPROVED, AMOUNT_U, 0, ["withdrawal_hold"]),
        ("rejected", State.REJECTED, 0, AMOUNT_U, ["withdrawal_hold", "withdrawal_release"]),
        ("cancelled", State.CANCELLED, 0, AMOUNT_U, ["withdrawal_hold", "withdrawal_release"]),
        ("submitted", State.PAYOUT_SUBMITTED, AMOUNT_U, 0, ["withdrawal_hold"]),
        ("paid", State.PAID, 0, 0, ["withdrawal_hold", "payout"]),
        ("failed", State.PAYOUT_FAILED, AMOUNT_U, 0, ["withdrawal_hold"]),
        ("refunded", State.REFUNDED, 0, AMOUNT_U, ["withdrawal_hold", "withdrawal_release"]),
    ],
)
def test_each_trait_reaches_its_state_through_the_services(
    trait: str | None,
    state: str,
    held_u: int,
    available_u: int,
    journals: list[str],
    stub: Any,
    assert_ledger_ok: Any,
) -> None:
    withdrawal = WithdrawalFactory.create(psp=stub, **({trait: True} if trait else {}))

    assert withdrawal.state == state
    assert balances(withdrawal.user) == Balances(available_u=available_u, held_u=held_u)
    assert journal_types(withdrawal) == journals
    assert_ledger_ok()


def test_payout_attempts_match_what_the_psp_answered(stub: Any) -> None:
    assert list(WithdrawalFactory.create(psp=stub, submitted=True).attempts.values_list("outcome", flat=True)) == [
        PayoutAttempt.Outcome.ACCEPTED
    ]
    failed = WithdrawalFactory.create(psp=stub, failed=True, provider="stripe")
    assert list(failed.attempts.values_list("outcome", flat=True)) == [PayoutAttempt.Outcome.DECLINED]
    assert failed.provider == "stripe" and failed.payout_generation == 1


def test_above_the_four_eyes_threshold_two_operators_decide(
    stub: Any, make_staff: Any, settings: Any, assert_ledger_ok: Any
) -> None:
    settings.FOUR_EYES_THRESHOLDS = {**settings.FOUR_EYES_THRESHOLDS, "USDC": "1"}
    maker, checker = make_staff(role="finance"), make_staff(role="finance")

    withdrawal = WithdrawalFactory.create(psp=stub, refunded=True, approver=maker, checker=checker)

    assert withdrawal.state == State.REFUNDED
    assert balances(withdrawal.user) == Balances(available_u=AMOUNT_U, held_u=0)
    assert_ledger_ok()


def test_the_given_player_pays_from_their_own_balance(funded_player: Any, assert_ledger_ok: Any) -> None:
    before = balances(funded_player)

    withdrawal = WithdrawalFactory.create(user=funded_player, amount_u=1_000_000, approved=True)

    assert withdrawal.user == funded_player
    assert balances(funded_player) == Balances(before.available_u - 1_000_000, before.held_u + 1_000_000)
    assert_ledger_ok()


def test_psp_states_need_the_stub_and_fields_come_from_the_services_only(db: Any) -> None:
    with pytest.raises(TypeError, match="needs the PSP stub"):
        WithdrawalFactory.create(paid=True)
    with pytest.raises(TypeError, match="only the services"):
        WithdrawalFactory.create(psp_reference="forged")
