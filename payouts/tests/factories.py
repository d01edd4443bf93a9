"""Factories for withdrawals in each state of their state machine, reached through the services only.

`WithdrawalFactory.create()` is a `requested` withdrawal of 5 USDC by a new player funded with exactly that
amount; a trait takes it further, each step through the service a person or the worker would call:

    requested --withdrawal_request-->  (funds held)
    cancelled  (withdrawal_cancel by the player; released)
    rejected   (withdrawal_reject by an operator; released)
    approved   (withdrawal_approve; a second operator applies it above the four-eyes threshold)
    submitted  (payout_submit, accepted by the PSP stub: payout_submitted with the PSP's reference)
    paid       (payout_event_process: the PSP's paid webhook; burned)
    failed     (payout_submit, declined by the PSP stub: payout_failed, in manual review, funds held)
    refunded   (withdrawal_resolve refund_failed after a decline; released)

States past `approved` call the PSP: pass the running stub the settings point at, `psp=stub` (the
payouts `stub` fixture). Operators are new finance operators unless given (`approver=`, `checker=`).
No factory sets a withdrawal's fields or state itself: `assert_ledger_ok` holds after any of them.
"""

from __future__ import annotations

from typing import Any

import factory

from accounts.models import User
from accounts.tests.factories import StaffFactory
from ledger.tests.factories import FundedPlayerFactory
from payouts.models import Withdrawal
from payouts.services import (
    PayoutNotice,
    payout_event_process,
    payout_submit,
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_resolve,
)
from payouts.tests.helpers import DESTINATIONS, destination_for
from webhooks.stub import PSPStub

STUB_KIND = {"adyen": "adyen_transfer", "stripe": "stripe_payout"}
PSP_STATES = (
    Withdrawal.State.PAYOUT_SUBMITTED,
    Withdrawal.State.PAID,
    Withdrawal.State.PAYOUT_FAILED,
    Withdrawal.State.REFUNDED,
)

State = Withdrawal.State


class WithdrawalFactory(factory.django.DjangoModelFactory[Withdrawal]):
    class Meta:
        model = Withdrawal

    class Params:
        approved = factory.Trait(state=State.APPROVED)
        rejected = factory.Trait(state=State.REJECTED)
        cancelled = factory.Trait(state=State.CANCELLED)
        submitted = factory.Trait(state=State.PAYOUT_SUBMITTED)
        paid = factory.Trait(state=State.PAID)
        failed = factory.Trait(state=State.PAYOUT_FAILED)
        refunded = factory.Trait(state=State.REFUNDED)

    amount_u = 5_000_000
    currency = "USDC"
    provider = "adyen"
    # The rail's own destination shape (payouts.tests.helpers.DESTINATIONS); give one for a chain withdrawal.
    destination = factory.LazyAttribute(lambda o: destination_for(o.provider) if o.provider in DESTINATIONS else None)
    user = factory.SubFactory(
        FundedPlayerFactory, balance_u=factory.SelfAttribute("..amount_u"), currency=factory.SelfAttribute("..currency")
    )
    # Not fields the factory sets: where to drive the withdrawal, who decides, which PSP stub answers.
    state = State.REQUESTED
    approver: User | None = None
    checker: User | None = None
    psp: PSPStub | None = None

    @classmethod
    def _create(
        cls,
        model_class: type[Withdrawal],
        *args: Any,
        user: User,
        amount_u: int,
        currency: str,
        provider: str,
        destination: dict[str, Any] | None,
        state: str,
        approver: User | None,
        checker: User | None,
        psp: PSPStub | None,
        **kwargs: Any,
    ) -> Withdrawal:
        if args or kwargs:
            raise TypeError(f"WithdrawalFactory cannot set {sorted(kwargs)}: only the services write a withdrawal.")
        if state in PSP_STATES and psp is None:
            raise TypeError(f"A {state} withdrawal needs the PSP stub: WithdrawalFactory.create(..., psp=stub).")
        withdrawal = withdrawal_request(
            user=user, amount_u=amount_u, currency=currency, provider=provider, destination=destination
        )
        operators = _Operators(approver, checker)
        if state == State.CANCELLED:
            withdrawal_cancel(withdrawal_id=withdrawal.pk, acting_user=user, reason="factory: cancelled")
        elif state == State.REJECTED:
            withdrawal_reject(withdrawal_id=withdrawal.pk, acting_user=operators.first(), reason="factory: rejected")
        elif state != State.REQUESTED:
            _approve(withdrawal, operators)
            if state in PSP_STATES:
                assert psp is not None
                _pay_out(withdrawal, state=state, psp=psp, operators=operators)
        withdrawal.refresh_from_db()
        if withdrawal.state != state:
            raise AssertionError(f"WithdrawalFactory wanted {state}; the services left {withdrawal}.")
        return withdrawal


class _Operators:
    """The maker, then (above the four-eyes threshold) a different checker; created when first needed."""

    def __init__(self, approver: User | None, checker: User | None) -> None:
        self._approver, self._checker = approver, checker

    def first(self) -> User:
        if self._approver is None:
            self._approver = StaffFactory.create(role="finance")
        return self._approver

    def second(self) -> User:
        if self._checker is None:
            self._checker = StaffFactory.create(role="finance")
        return self._checker


def _approve(withdrawal: Withdrawal, operators: _Operators) -> None:
    withdrawal = withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operators.first(), reason="factory")
    if withdrawal.state == State.REQUESTED:  # four eyes: the first approval was a proposal
        withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operators.second(), reason="factory")


def _pay_out(withdrawal: Withdrawal, *, state: str, psp: PSPStub, operators: _Operators) -> None:
    declined = state in (State.PAYOUT_FAILED, State.REFUNDED)
    if declined:
        psp.set_mode(STUB_KIND[withdrawal.provider], "decline", times=1)
    run = payout_submit(withdrawal_id=withdrawal.pk)
    if run.status != ("declined" if declined else "accepted"):
        raise AssertionError(f"The PSP stub answered {run.status} ({run.detail}) for withdrawal {withdrawal.pk}.")
    withdrawal.refresh_from_db()
    if state == State.PAID:
        payout_event_process(
            notice=PayoutNotice(
                provider=withdrawal.provider,
                event_id=f"factory-paid-{withdrawal.idempotency_key}",
                event_type="factory.paid",
                payload={"idempotency_key": withdrawal.idempotency_key},
                outcome="paid",
                idempotency_key=withdrawal.idempotency_key,
                psp_reference=withdrawal.psp_reference,
            )
        )
    elif state == State.REFUNDED:
        _resolve(withdrawal, "refund_failed", operators)


def _resolve(withdrawal: Withdrawal, decision: str, operators: _Operators) -> None:
    reason = f"factory: {decision}"
    withdrawal = withdrawal_resolve(
        withdrawal_id=withdrawal.pk, acting_user=operators.first(), decision=decision, reason=reason
    )
    if withdrawal.state == State.PAYOUT_FAILED:  # four eyes: the first decision was a proposal
        withdrawal_resolve(
            withdrawal_id=withdrawal.pk, acting_user=operators.second(), decision=decision, reason=reason
        )
