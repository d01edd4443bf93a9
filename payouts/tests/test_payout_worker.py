"""The payout worker against the PSP stub: declines, timeouts, transient errors, switches, auto-pause,
and the manual-review decisions that follow a failed payout."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ledger.models import Journal
from ops.models import Switch, WorkerRun
from ops.switches import switch_set
from payouts.models import PayoutAttempt, Withdrawal
from payouts.services import payout_submit, withdrawal_resolve
from payouts.tasks import submit_payout
from webhooks.stub import STUB_CONNECTED_ACCOUNT

from .factories import WithdrawalFactory
from .helpers import Balances, balances, send_adyen_transfer, send_stripe_payout_event, snapshot

pytestmark = pytest.mark.django_db

AMOUNT_U = 25_000_000
HELD = Balances(available_u=0, held_u=AMOUNT_U)  # a player funded with exactly the withdrawal, which is held


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_declined_payout_goes_to_manual_review_with_funds_held(provider: str, stub: Any, assert_ledger_ok: Any) -> None:
    withdrawal = WithdrawalFactory.create(failed=True, psp=stub, provider=provider, amount_u=AMOUNT_U)
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED
    assert balances(withdrawal.user) == HELD
    assert list(PayoutAttempt.objects.filter(withdrawal=withdrawal).values_list("outcome", flat=True)) == ["declined"]
    assert not Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").exists()
    assert_ledger_ok()


def test_refund_failed_restores_the_funds(stub: Any, finance: Any, assert_ledger_ok: Any) -> None:
    withdrawal = WithdrawalFactory.create(failed=True, psp=stub, amount_u=AMOUNT_U)
    withdrawal_resolve(
        withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason="gateway confirmed failure"
    )
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.REFUNDED
    assert balances(withdrawal.user) == Balances(available_u=AMOUNT_U, held_u=0)
    assert Journal.objects.get(reference=f"withdrawal:{withdrawal.pk}:release").type == "withdrawal_release"
    assert_ledger_ok()


def test_confirm_sent_burns_the_funds(stub: Any, finance: Any, finance2: Any, assert_ledger_ok: Any) -> None:
    withdrawal = WithdrawalFactory.create(failed=True, psp=stub, amount_u=AMOUNT_U)
    for operator in (finance, finance2):  # the PSP never said paid: two operators, whatever the amount
        withdrawal_resolve(
            withdrawal_id=withdrawal.pk, acting_user=operator, decision="confirm_sent", reason="gateway confirmed it"
        )
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert balances(withdrawal.user) == Balances(available_u=0, held_u=0)
    assert Journal.objects.get(reference=f"withdrawal:{withdrawal.pk}:payout").type == "payout"
    assert_ledger_ok()


def test_retry_after_decline_uses_a_new_key_and_pays_once(
    stub: Any, finance: Any, assert_ledger_ok: Any, django_capture_on_commit_callbacks: Any
) -> None:
    withdrawal = WithdrawalFactory.create(failed=True, psp=stub, amount_u=AMOUNT_U)
    first_key = withdrawal.idempotency_key
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="retry", reason="PSP topped up")
    assert len(callbacks) == 1
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert withdrawal.idempotency_key != first_key
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "nothing_to_do"
    assert stub.submissions(first_key) == 1
    assert stub.submissions(withdrawal.idempotency_key) == 1
    transfer = next(t for t in stub.objects("adyen_transfer") if t["reference"] == withdrawal.idempotency_key)
    assert send_adyen_transfer(transfer, "booked").json()["result"] == "paid"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert balances(withdrawal.user).held_u == 0
    assert_ledger_ok()


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_timeout_then_retry_pays_out_once(provider: str, stub: Any, assert_ledger_ok: Any) -> None:
    kind = "adyen_transfer" if provider == "adyen" else "stripe_payout"
    stub.set_mode(kind, "timeout", times=1, delay=2.0)
    withdrawal = WithdrawalFactory.create(approved=True, provider=provider, amount_u=AMOUNT_U)

    first = payout_submit(withdrawal_id=withdrawal.pk)
    assert first.status == "ambiguous"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED  # never auto-released
    assert balances(withdrawal.user) == HELD

    second = payout_submit(withdrawal_id=withdrawal.pk)
    assert second.status == "accepted"
    assert second.idempotency_key == first.idempotency_key
    assert stub.submissions(withdrawal.idempotency_key) == 1
    assert list(PayoutAttempt.objects.filter(withdrawal=withdrawal).values_list("outcome", flat=True)) == [
        "ambiguous",
        "accepted",
    ]

    if provider == "adyen":
        paid = send_adyen_transfer(stub.objects("adyen_transfer")[0], "booked")
    else:
        paid = send_stripe_payout_event(stub.objects("stripe_payout")[0], "payout.paid")
    assert paid.json()["result"] == "paid"
    assert balances(withdrawal.user).held_u == 0
    assert_ledger_ok()


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_task_retries_transient_errors_with_the_same_key(provider: str, stub: Any, settings: Any) -> None:
    settings.PAYOUT_RETRY_BACKOFF_S = 0
    stub.set_mode("adyen_transfer" if provider == "adyen" else "stripe_payout", "fail", times=2)
    withdrawal = WithdrawalFactory.create(approved=True, provider=provider)
    assert submit_payout.apply(args=[withdrawal.pk]).get() == "accepted"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert stub.submissions(withdrawal.idempotency_key) == 1
    outcomes = list(PayoutAttempt.objects.filter(withdrawal=withdrawal).values_list("outcome", flat=True))
    assert outcomes == ["error", "error", "accepted"]
    runs = list(WorkerRun.objects.filter(worker="payout").order_by("id").values_list("result", flat=True))
    assert runs == ["failed", "failed", "ok"]


def test_decline_is_not_retried(stub: Any) -> None:
    stub.set_mode("adyen_transfer", "decline")
    withdrawal = WithdrawalFactory.create(approved=True)
    assert submit_payout.apply(args=[withdrawal.pk]).get() == "declined"
    assert PayoutAttempt.objects.filter(withdrawal=withdrawal).count() == 1
    assert WorkerRun.objects.filter(worker="payout", result="ok").count() == 1


@pytest.mark.parametrize("switch", [Switch.Name.PAYOUT_FREEZE, Switch.Name.PAYOUT_AUTO_PAUSE])
def test_switch_leaves_the_withdrawal_approved(switch: str, stub: Any, finance: Any) -> None:
    withdrawal = WithdrawalFactory.create(approved=True)
    switch_set(name=switch, on=True, reason="incident", actor=finance)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "paused"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.APPROVED
    assert stub.requests == []
    switch_set(name=switch, on=False, reason="resolved", actor=finance)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"


def test_consecutive_failures_pause_payouts(stub: Any, player: Any, fund: Any, finance: Any, settings: Any) -> None:
    from ops.switches import switch_is_on

    settings.PAYOUT_AUTO_PAUSE_AFTER_FAILURES = 3
    fund(player, 100_000_000)
    stub.set_mode("adyen_transfer", "fail")
    withdrawals = WithdrawalFactory.create_batch(4, user=player, amount_u=1_000_000, approved=True)
    for withdrawal in withdrawals[:2]:
        assert payout_submit(withdrawal_id=withdrawal.pk).status == "error"
    assert not switch_is_on(Switch.Name.PAYOUT_AUTO_PAUSE)
    assert payout_submit(withdrawal_id=withdrawals[2].pk).status == "error"
    assert switch_is_on(Switch.Name.PAYOUT_AUTO_PAUSE)
    assert "3 consecutive failed payout calls to adyen" in Switch.objects.get(name=Switch.Name.PAYOUT_AUTO_PAUSE).reason
    assert payout_submit(withdrawal_id=withdrawals[3].pk).status == "paused"
    assert Withdrawal.objects.get(pk=withdrawals[3].pk).state == Withdrawal.State.APPROVED
    assert balances(player).held_u == 4_000_000


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_failed_webhook_moves_to_manual_review(provider: str, stub: Any, assert_ledger_ok: Any) -> None:
    withdrawal = WithdrawalFactory.create(submitted=True, psp=stub, provider=provider, amount_u=AMOUNT_U)
    if provider == "adyen":
        response = send_adyen_transfer(stub.objects("adyen_transfer")[0], "returned")
    else:
        response = send_stripe_payout_event(stub.objects("stripe_payout")[0], "payout.failed")
    assert response.json()["result"] == "payout_failed"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED
    assert balances(withdrawal.user) == HELD
    assert_ledger_ok()


def test_webhook_that_does_not_fit_the_state_changes_nothing(stub: Any, assert_ledger_ok: Any) -> None:
    withdrawal = WithdrawalFactory.create(failed=True, psp=stub)
    transfer = stub.objects("adyen_transfer")[0]
    frozen = snapshot()
    response = send_adyen_transfer(transfer, "booked")
    assert response.status_code == 200
    assert response.json()["result"].startswith("review:")
    after = snapshot()
    assert after["events"] == frozen["events"] + 1
    assert {k: v for k, v in after.items() if k != "events"} == {k: v for k, v in frozen.items() if k != "events"}
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_FAILED
    assert_ledger_ok()


def test_requeue_after_a_freeze_and_after_unanswered_timeouts(
    stub: Any, finance: Any, monkeypatch: pytest.MonkeyPatch, assert_ledger_ok: Any
) -> None:
    from django.core.management import CommandError, call_command

    from payouts.services import payouts_requeue

    queued: list[int] = []
    monkeypatch.setattr("payouts.services._enqueue_payout", queued.append)
    frozen_one = WithdrawalFactory.create(approved=True)
    switch_set(name=Switch.Name.PAYOUT_FREEZE, on=True, reason="incident", actor=finance)
    assert payout_submit(withdrawal_id=frozen_one.pk).status == "paused"
    assert payouts_requeue(older_than_s=0) == []
    with pytest.raises(CommandError, match="payout_freeze"):
        call_command("requeue_payouts")
    switch_set(name=Switch.Name.PAYOUT_FREEZE, on=False, reason="over", actor=finance)

    stub.set_mode("adyen_transfer", "timeout", times=1, delay=2.0)
    timed_out = WithdrawalFactory.create(approved=True)
    assert payout_submit(withdrawal_id=timed_out.pk).status == "ambiguous"
    WithdrawalFactory.create(submitted=True, psp=stub)  # answered: nothing to requeue

    assert payouts_requeue(older_than_s=0) == [frozen_one.pk, timed_out.pk]
    assert queued == [frozen_one.pk, timed_out.pk]
    for withdrawal_id in queued:
        assert payout_submit(withdrawal_id=withdrawal_id).status == "accepted"
    timed_out.refresh_from_db()
    assert stub.submissions(timed_out.idempotency_key) == 1
    assert payouts_requeue(older_than_s=0) == []
    assert_ledger_ok()


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_provider_sends_our_key_amount_and_credentials(provider: str, stub: Any) -> None:
    withdrawal = WithdrawalFactory.create(submitted=True, psp=stub, provider=provider, amount_u=AMOUNT_U)
    request = stub.requests[-1]  # the call that pays: Adyen's transfer, Stripe's payout on the connected account
    assert request.idempotency_key == withdrawal.idempotency_key == f"wd-{withdrawal.pk}-1"
    if provider == "adyen":
        assert len(stub.requests) == 1
        assert request.path.endswith("/transfers")
        assert request.headers["x-api-key"] == "adyen_test_key"
        assert request.body["amount"] == {"currency": "USDC", "value": AMOUNT_U}
        assert request.body["balanceAccountId"] == "BA_TEST"
        assert request.body["reference"] == withdrawal.idempotency_key
        assert withdrawal.flow_id.startswith("wd-")
        assert request.body["description"] == f"Withdrawal {withdrawal.pk} flow {withdrawal.flow_id}"
        # Banks carry a transfer's description in the SEPA character set: letters, digits, / - ? : ( ) . , ' + space.
        assert re.fullmatch(r"[A-Za-z0-9/?:().,'+ -]{1,140}", request.body["description"])
        [transfer] = stub.objects("adyen_transfer")
        assert withdrawal.flow_id in transfer["description"]  # what the PSP keeps
    else:  # Stripe Connect: a transfer to the player's connected account, then that account's payout
        tags = {"withdrawal_id": str(withdrawal.pk), "flow_id": withdrawal.flow_id}
        lookup, transfer_call, payout_call = stub.requests
        assert (lookup.method, lookup.path) == ("GET", "/v1/transfers")  # one transfer per withdrawal, ever
        assert transfer_call.path == "/v1/transfers" and "stripe-account" not in transfer_call.headers
        assert transfer_call.headers["authorization"] == "Bearer sk_test_stub"
        assert transfer_call.idempotency_key == f"wd-{withdrawal.pk}:transfer:0"
        assert transfer_call.body["amount"] == str(AMOUNT_U)
        assert transfer_call.body["destination"] == STUB_CONNECTED_ACCOUNT
        assert transfer_call.body["transfer_group"] == f"withdrawal-{withdrawal.pk}"
        assert transfer_call.body["metadata"] == tags
        assert payout_call.path == "/v1/payouts"
        assert payout_call.headers["stripe-account"] == STUB_CONNECTED_ACCOUNT
        assert payout_call.headers["authorization"] == "Bearer sk_test_stub"
        assert payout_call.body["amount"] == str(AMOUNT_U)
        assert payout_call.body["metadata"] == {**tags, "idempotency_key": withdrawal.idempotency_key}
        assert withdrawal.flow_id.startswith("wd-")
        [payout] = stub.objects("stripe_payout")
        assert payout["metadata"]["flow_id"] == withdrawal.flow_id  # what the PSP keeps
        assert stub.owner(payout["id"]) == STUB_CONNECTED_ACCOUNT  # paid from the player's account, not ours


def test_paid_after_a_refund_is_reported_until_an_operator_reviews_it(stub: Any, finance: Any) -> None:
    """The PSP says paid after an operator refunded: money may have left twice. Never silent."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    from ops.models import AuditRecord
    from payouts.models import PayoutEvent

    def detector() -> str:
        out = StringIO()
        try:
            call_command("detect_stuck_finance_jobs", stdout=out)
        except CommandError:  # exit 1: something is stuck (it printed it)
            assert out.getvalue()
        return out.getvalue()

    withdrawal = WithdrawalFactory.create(refunded=True, psp=stub)
    assert detector() == ""
    before = snapshot()
    response = send_adyen_transfer(stub.objects("adyen_transfer")[0], "booked")
    assert response.json()["result"] == "review: PSP says paid but withdrawal is refunded"
    assert snapshot()["balances"] == before["balances"]  # nothing moves automatically

    event = PayoutEvent.objects.get(result__startswith="review:")
    report = detector()
    assert f"payout_event {event.pk} state=needs_review" in report and f"withdrawal={withdrawal.pk}" in report
    with pytest.raises(CommandError, match="reason"):
        call_command("review_payout_event", "--id", str(event.pk), "--reason", " ", "--operator", finance.email)
    call_command(
        "review_payout_event",
        "--id",
        str(event.pk),
        "--reason",
        "recovered from the player, ticket 9",
        "--operator",
        finance.email,
        stdout=StringIO(),
    )
    assert detector() == ""
    assert (
        AuditRecord.objects.get(action="payouts.payout_event.reviewed").reason == "recovered from the player, ticket 9"
    )
    with pytest.raises(CommandError, match="already reviewed"):
        call_command("review_payout_event", "--id", str(event.pk), "--reason", "again", "--operator", finance.email)


def test_a_database_error_in_the_payout_task_is_retried_with_the_same_key(
    stub: Any, monkeypatch: Any, settings: Any
) -> None:
    from django.db import OperationalError

    from payouts import services

    settings.PAYOUT_RETRY_BACKOFF_S = 0
    withdrawal = WithdrawalFactory.create(approved=True)
    real, calls = services.payout_submit, []

    def restarting_database(**kwargs: Any) -> Any:
        calls.append(kwargs["withdrawal_id"])
        if len(calls) == 1:
            raise OperationalError("the database system is starting up")
        return real(**kwargs)

    monkeypatch.setattr(services, "payout_submit", restarting_database)
    assert submit_payout.apply(args=[withdrawal.pk]).get() == "accepted"
    assert calls == [withdrawal.pk, withdrawal.pk]
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert stub.submissions(withdrawal.idempotency_key) == 1
