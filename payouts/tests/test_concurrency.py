"""Two operators acting on one withdrawal at the same moment, on real PostgreSQL connections:
one wins, the other gets a clear 409, and money moves once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from ledger.models import Journal
from ops.errors import ApplicationError
from payouts.models import Withdrawal
from payouts.services import (
    payout_submit,
    withdrawal_approve,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_resolve,
)
from payouts.tests.helpers import destination_for

from .helpers import balances

pytestmark = pytest.mark.django_db(transaction=True)

AMOUNT_U = 7_000_000


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Approvals commit here; keep their payout message off the broker (no worker in these tests)."""
    monkeypatch.setattr("payouts.services._enqueue_payout", lambda withdrawal_id: None)


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions in threads released together; return each one's result or ApplicationError."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int, action: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = action()
        except ApplicationError as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _failed_payout(stub: Any, player: Any, operator: Any) -> Withdrawal:
    stub.set_mode("adyen_transfer", "decline", times=1)
    withdrawal = withdrawal_request(
        user=player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operator)
    payout_submit(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED
    return withdrawal


def test_confirm_sent_and_refund_at_once_move_money_once(
    stub: Any, funded_player: Any, finance: Any, finance2: Any, make_staff: Any, assert_ledger_ok: Any
) -> None:
    before = balances(funded_player)
    withdrawal = _failed_payout(stub, funded_player, finance)
    # The PSP never said paid, so confirm_sent takes two operators: a third proposes it, `finance` applies it
    # in the race against `finance2`'s refund.
    withdrawal_resolve(
        withdrawal_id=withdrawal.pk,
        acting_user=make_staff(role="finance"),
        decision="confirm_sent",
        reason="gateway says sent",
    )
    results = race(
        lambda: withdrawal_resolve(
            withdrawal_id=withdrawal.pk, acting_user=finance, decision="confirm_sent", reason="gateway says sent"
        ),
        lambda: withdrawal_resolve(
            withdrawal_id=withdrawal.pk, acting_user=finance2, decision="refund_failed", reason="gateway says failed"
        ),
    )
    winners = [r for r in results if isinstance(r, Withdrawal)]
    losers = [r for r in results if isinstance(r, ApplicationError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0].status == 409
    # The refund either finds the payout paid, or the pending confirmation it must not overrule.
    assert losers[0].code in ("payouts/invalid-transition", "approvals/refused")

    withdrawal.refresh_from_db()
    assert withdrawal.state == winners[0].state
    journals = set(
        Journal.objects.filter(reference__startswith=f"withdrawal:{withdrawal.pk}:").values_list("type", flat=True)
    )
    after = balances(funded_player)
    assert after.held_u == 0
    if withdrawal.state == Withdrawal.State.PAID:
        assert journals == {"withdrawal_hold", "payout"}
        assert after.available_u == before.available_u - AMOUNT_U
    else:
        assert withdrawal.state == Withdrawal.State.REFUNDED
        assert journals == {"withdrawal_hold", "withdrawal_release"}
        assert after.available_u == before.available_u
    assert_ledger_ok()


def test_two_refunds_at_once_release_once(
    stub: Any, funded_player: Any, finance: Any, finance2: Any, assert_ledger_ok: Any
) -> None:
    before = balances(funded_player)
    withdrawal = _failed_payout(stub, funded_player, finance)
    results = race(
        *[
            (
                lambda op=op: withdrawal_resolve(
                    withdrawal_id=withdrawal.pk, acting_user=op, decision="refund_failed", reason="failed at the bank"
                )
            )
            for op in (finance, finance2)
        ]
    )
    assert sorted(type(r).__name__ for r in results) == ["InvalidTransition", "Withdrawal"]
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:release").count() == 1
    assert balances(funded_player) == before
    assert_ledger_ok()


def test_approve_and_reject_at_once(funded_player: Any, finance: Any, finance2: Any, assert_ledger_ok: Any) -> None:
    before = balances(funded_player)
    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    results = race(
        lambda: withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance),
        lambda: withdrawal_reject(withdrawal_id=withdrawal.pk, acting_user=finance2, reason="fraud suspicion"),
    )
    losers = [r for r in results if isinstance(r, ApplicationError)]
    assert len(losers) == 1 and losers[0].status == 409, results
    withdrawal.refresh_from_db()
    if withdrawal.state == Withdrawal.State.APPROVED:
        assert balances(funded_player).held_u == AMOUNT_U
        assert not Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:release").exists()
    else:
        assert withdrawal.state == Withdrawal.State.REJECTED
        assert balances(funded_player) == before
    assert_ledger_ok()


def test_second_operator_waits_for_the_row_lock_then_gets_409(
    stub: Any, funded_player: Any, finance: Any, finance2: Any, assert_ledger_ok: Any
) -> None:
    import time

    from django.db import transaction

    from payouts.lock_objects import withdrawal_lock

    withdrawal = _failed_payout(stub, funded_player, finance)
    locked, release = threading.Event(), threading.Event()

    def slow_first_operator() -> None:
        try:
            with transaction.atomic():
                withdrawal_lock(withdrawal_id=withdrawal.pk)  # operator 1 holds the row...
                locked.set()
                release.wait(timeout=10)
                withdrawal_resolve(
                    withdrawal_id=withdrawal.pk,
                    acting_user=finance,
                    decision="refund_failed",
                    reason="bank says failed",
                )
        finally:
            connection.close()

    first = threading.Thread(target=slow_first_operator)
    first.start()
    assert locked.wait(timeout=10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with pytest.raises(ApplicationError) as error:
        withdrawal_resolve(
            withdrawal_id=withdrawal.pk, acting_user=finance2, decision="confirm_sent", reason="bank says sent"
        )
    waited = time.monotonic() - started
    first.join(timeout=10)

    assert waited >= 0.4  # it blocked on the lock instead of acting on a stale read
    assert error.value.status == 409
    assert "refunded" in error.value.detail
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.REFUNDED
    assert not Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").exists()
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:release").count() == 1
    assert_ledger_ok()
