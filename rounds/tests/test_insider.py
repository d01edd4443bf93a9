"""The insider: a finance operator who tries to play against a player and force the result alone.

Each step of the scenario in issue 8 is refused, and each refusal leaves balances, rows and states
exactly as they were (the custody webhook is stored and flagged, never credited).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from ledger.decisions import operator_credit_propose
from ledger.models import Account
from ops.approvals import SecondOperatorRequired, decision_approve
from ops.errors import NotAPlayer
from ops.models import Proposal
from payouts.tests.helpers import snapshot
from rounds import errors
from rounds.models import Round
from rounds.overrides import force_result_propose
from rounds.services import round_lock
from webhooks.models import WebhookEvent
from webhooks.stub import custody_request

pytestmark = pytest.mark.django_db


def test_the_insider_is_refused_at_every_step(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    make_staff: Callable[..., Any],
    make_player: Callable[..., Any],
    api_client_for: Callable[..., Any],
    clock: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
    assert_ledger_ok: Callable[[], None],
) -> None:
    from webhooks.tasks import process_webhook_event

    insider = make_staff(role="finance", email="finance@example.com")
    player = make_player()
    round_obj = open_round("20250908")
    stake = place(round_obj, "DOWN", 50_000_000, player=player)
    frozen = snapshot()

    # 1. A custody deposit webhook for the operator's account: stored and flagged, nothing credited.
    payload = {"reference": "0xinsider", "user_id": str(insider.public_id), "amount_u": 10_000_000, "currency": "USDC"}
    signed = custody_request(payload, settings.CUSTODY_WEBHOOK_KEY)
    with django_capture_on_commit_callbacks(execute=False):
        response = Client().post(
            "/webhooks/deposits", signed.body, content_type="application/json", headers=signed.headers
        )
    assert response.status_code < 300, response.content
    event = WebhookEvent.objects.get(reference="0xinsider")
    process_webhook_event.apply(args=[event.pk]).get()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FLAGGED and "operator account" in event.reason
    assert not Account.objects.filter(owner=insider).exists()
    after = snapshot()
    assert (after["balances"], after["journals"], after["entries"]) == (
        frozen["balances"],
        frozen["journals"],
        frozen["entries"],
    )
    frozen = after

    api = api_client_for(insider)
    # 2. The operator starts a Stripe deposit: 403, the PSP is never called.
    response = api.post(
        "/v1/deposits",
        {"provider": "stripe", "amount_u": 10_000_000, "currency": "USDC"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="insider-1",
    )
    assert (response.status_code, response.json()["type"]) == (403, "accounts/not-a-player")
    # 3. The operator bets UP against the player: 403.
    response = api.post(
        f"/v1/rounds/{round_obj.code}/bets",
        {"side": "UP", "stake_u": 10_000_000},
        format="json",
        HTTP_IDEMPOTENCY_KEY="insider-2",
    )
    assert (response.status_code, response.json()["type"]) == (403, "accounts/not-a-player")
    # ... nor can an operator credit go to an operator's account.
    with pytest.raises(NotAPlayer):
        operator_credit_propose(user=insider, amount_u=10_000_000, currency="USDC", reason="me", acting_user=insider)
    with pytest.raises(CommandError, match="operator account"):
        call_command(
            "deposit", "--user", insider.email, "--amount", "10000000", "--reason", "x", "--operator", insider.email
        )
    assert snapshot() == frozen

    # 4. Self-approval: the operator's own proposal cannot be applied by the same operator.
    proposal = operator_credit_propose(
        user=player, amount_u=1_000_000, currency="USDC", reason="goodwill", acting_user=insider
    )
    frozen = snapshot()
    with pytest.raises(SecondOperatorRequired):
        decision_approve(proposal_id=proposal.pk, acting_user=insider)
    assert snapshot() == frozen

    # 5. A forced result before the market has closed (the round locked early): refused.
    round_lock(code=round_obj.code, acting_user=insider, reason="locking early")
    frozen = snapshot()
    assert clock.now < round_obj.close_at
    with pytest.raises(errors.SettleTooEarly):
        force_result_propose(
            code=round_obj.code, result="UP", reason="I know", evidence="trust me", acting_user=insider
        )
    with pytest.raises(CommandError, match="rounds/too-early"):
        call_command(
            "settle_round",
            "--code",
            round_obj.code,
            "--result",
            "UP",
            "--reason",
            "I know",
            "--evidence",
            "trust me",
            "--operator",
            insider.email,
        )
    assert snapshot() == frozen

    # 6. After the close, one operator's forced result is a proposal: nothing is applied.
    clock.set(round_obj.close_at)
    forced = force_result_propose(
        code=round_obj.code, result="UP", reason="oracle down", evidence="screenshot", acting_user=insider
    )
    frozen = snapshot()
    with pytest.raises(SecondOperatorRequired):
        decision_approve(proposal_id=forced.pk, acting_user=insider)
    with pytest.raises(CommandError, match="second-operator-required"):
        call_command("settle_round", "--approve", str(forced.pk), "--operator", insider.email)
    assert snapshot() == frozen
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED
    assert Account.objects.get(pk=stake.account_id).balance_u == 0  # the stake is still in the pool
    assert Account.objects.get(pk=round_obj.pool_account_id).balance_u == 50_000_000
    assert Proposal.objects.filter(state=Proposal.State.PENDING).count() == 2
    assert_ledger_ok()
