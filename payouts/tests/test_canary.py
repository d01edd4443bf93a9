"""The canary money loop end to end: deposit, withdrawal request, approval, payout through the real
SDK against the PSP stub, paid webhook, ledger settlement (go-live runbook, T-0)."""

from __future__ import annotations

from typing import Any

import pytest

from payouts.models import PayoutAttempt, PayoutEvent, Withdrawal
from payouts.tasks import submit_payout
from payouts.tests.helpers import destination_for
from webhooks.accounts import clearing_balance

from .helpers import balances, send_adyen_transfer, send_stripe_payout_event, snapshot

AMOUNT_U = 10_000_000  # 10 USDC, the runbook's canary amount


def _psp_balance(provider: str) -> int:
    """The provider's clearing balance: its clearing account plus the stripes deposits debit."""
    return clearing_balance(provider=provider, currency="USDC")


def _deposit_by_webhook(player: Any, amount_u: int, django_capture_on_commit_callbacks: Any) -> None:
    """Deposit: a signed custody webhook over HTTP, processed by the deposits task (run synchronously)."""
    from django.conf import settings
    from django.test import Client

    from webhooks.models import WebhookEvent
    from webhooks.stub import custody_request
    from webhooks.tasks import process_webhook_event

    payload = {
        "reference": f"canary-{player.pk}",
        "user_id": str(player.public_id),
        "amount_u": amount_u,
        "currency": "USDC",
    }
    signed = custody_request(payload, settings.CUSTODY_WEBHOOK_KEY)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = Client().post(
            "/webhooks/deposits", signed.body, content_type="application/json", headers=signed.headers
        )
    assert response.status_code < 300, response.content
    assert len(callbacks) == 1  # processing is handed to the worker after commit
    process_webhook_event.apply(args=[WebhookEvent.objects.get(reference=payload["reference"]).pk]).get()


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
def test_canary_money_loop_over_http(
    provider: str,
    stub: Any,
    player: Any,
    finance: Any,
    api_client_for: Any,
    assert_ledger_ok: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    start = balances(player)
    _deposit_by_webhook(player, 100_000_000, django_capture_on_commit_callbacks)
    before = balances(player)
    assert before.available_u == start.available_u + 100_000_000
    psp_before = _psp_balance(provider)
    client = api_client_for(player)

    # Withdraw request: the funds are held.
    response = client.post(
        "/v1/withdrawals",
        {"amount_u": AMOUNT_U, "currency": "USDC", "provider": provider, "destination": destination_for(provider)},
        format="json",
        HTTP_IDEMPOTENCY_KEY="canary-1",
    )
    assert response.status_code == 201, response.content
    withdrawal_id = response.json()["id"]
    assert response.json()["state"] == "requested"
    assert balances(player).held_u == AMOUNT_U
    assert balances(player).available_u == before.available_u - AMOUNT_U

    # Admin approve over HTTP: no money moves, the payout worker is queued after commit.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client_for(finance).post(f"/v1/withdrawals/{withdrawal_id}/approve", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    assert len(callbacks) == 1
    assert balances(player).held_u == AMOUNT_U

    # The payout worker runs (synchronously here) and calls the PSP through the real SDK.
    assert submit_payout.apply(args=[withdrawal_id]).get() == "accepted"
    withdrawal = Withdrawal.objects.get(pk=withdrawal_id)
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert withdrawal.psp_reference
    assert stub.submissions(withdrawal.idempotency_key) == 1
    assert balances(player).held_u == AMOUNT_U  # still held until the PSP says paid

    # The PSP's paid webhook, signed with the stub's helpers.
    if provider == "adyen":
        transfer = stub.objects("adyen_transfer")[0]
        assert transfer["reference"] == withdrawal.idempotency_key
        response = send_adyen_transfer(transfer, "booked")
    else:
        payout = stub.objects("stripe_payout")[0]
        assert payout["metadata"]["idempotency_key"] == withdrawal.idempotency_key
        response = send_stripe_payout_event(payout, "payout.paid")
    assert response.status_code == 200, response.content
    assert response.json()["result"] == "paid"

    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    after = balances(player)
    assert after.held_u == 0
    assert after.available_u == before.available_u - AMOUNT_U
    assert _psp_balance(provider) == psp_before + AMOUNT_U
    assert_ledger_ok()

    # The same webhook again changes nothing.
    frozen = snapshot()
    if provider == "adyen":
        again = send_adyen_transfer(transfer, "booked")
    else:
        event_id = PayoutEvent.objects.get(provider="stripe").event_id
        again = send_stripe_payout_event(payout, "payout.paid", event_id=event_id)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert snapshot() == frozen
    assert PayoutAttempt.objects.filter(withdrawal=withdrawal).count() == 1

    # The withdrawal's story is in the audit log, state by state.
    from payouts.selectors import withdrawal_audit_trail

    steps = [(r.from_state, r.to_state) for r in withdrawal_audit_trail(withdrawal=withdrawal)]
    assert steps == [
        ("", "requested"),
        ("requested", "approved"),
        ("approved", "payout_submitted"),
        ("payout_submitted", "paid"),
    ]


def test_bad_signature_changes_nothing(stub: Any, funded_player: Any, finance: Any, assert_ledger_ok: Any) -> None:
    from payouts.services import payout_submit, withdrawal_approve, withdrawal_request

    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    payout_submit(withdrawal_id=withdrawal.pk)
    transfer = stub.objects("adyen_transfer")[0]
    frozen = snapshot()

    wrong_key = send_adyen_transfer(transfer, "booked", key="00" * 32)
    tampered = send_adyen_transfer(transfer, "booked", tamper=True)
    payout = {"id": "po_x", "object": "payout", "metadata": {"idempotency_key": withdrawal.idempotency_key}}
    stripe_wrong = send_stripe_payout_event(payout, "payout.paid", secret="whsec_wrong")

    for response in (wrong_key, tampered, stripe_wrong):
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == "payouts/invalid-webhook"
    assert snapshot() == frozen
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.PAYOUT_SUBMITTED
    assert_ledger_ok()
