"""The withdrawal API: idempotency, refusals that change nothing, permissions, four eyes, manual review."""

from __future__ import annotations

from typing import Any

import pytest

from ops.errors import NotAPlayer
from ops.models import AuditRecord
from payouts.models import Withdrawal
from payouts.services import withdrawal_approve, withdrawal_request
from payouts.tests.helpers import destination_for

from .factories import WithdrawalFactory
from .helpers import Balances, balances, snapshot

URL = "/v1/withdrawals"
BODY = {"amount_u": 5_000_000, "currency": "USDC", "provider": "adyen", "destination": destination_for("adyen")}


def post_withdrawal(client: Any, body: Any, key: str = "key-1") -> Any:
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def assert_problem(response: Any, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    if type_:
        assert body["type"] == type_
    return body


# --- Requests and idempotency ----------------------------------------------------------------


def test_same_request_twice_with_one_key_holds_once(funded_player: Any, api_client_for: Any) -> None:
    client = api_client_for(funded_player)
    before = balances(funded_player)
    first = post_withdrawal(client, BODY)
    second = post_withdrawal(client, BODY)
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Withdrawal.objects.count() == 1
    assert balances(funded_player).held_u == BODY["amount_u"]
    assert balances(funded_player).available_u == before.available_u - BODY["amount_u"]


def test_same_key_with_another_body_is_refused(funded_player: Any, api_client_for: Any) -> None:
    client = api_client_for(funded_player)
    post_withdrawal(client, BODY)
    frozen, held = snapshot(), balances(funded_player)
    response = post_withdrawal(client, {**BODY, "amount_u": 6_000_000})
    assert_problem(response, 422, "idempotency/key-reused")
    assert snapshot() == frozen
    assert balances(funded_player) == held


def test_key_is_required(funded_player: Any, api_client_for: Any) -> None:
    frozen = snapshot()
    response = api_client_for(funded_player).post(URL, BODY, format="json")
    assert_problem(response, 400, "idempotency/key-required")
    assert snapshot() == frozen


def test_balance_too_small_is_refused_and_changes_nothing(player: Any, fund: Any, api_client_for: Any) -> None:
    fund(player, 1_000_000)
    frozen, before = snapshot(), balances(player)
    body = assert_problem(post_withdrawal(api_client_for(player), BODY), 422, "ledger/insufficient-funds")
    assert "Nothing was posted" in body["detail"]
    assert snapshot() == frozen
    assert balances(player) == before
    assert Withdrawal.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "amount_u": 0}, "amount_u"),
        ({**BODY, "amount_u": -5}, "amount_u"),
        ({**BODY, "amount_u": "5000000"}, "amount_u"),
        ({**BODY, "amount_u": 5000000.0}, "amount_u"),
        ({**BODY, "amount_u": 1.5}, "amount_u"),
        ({**BODY, "amount_u": True}, "amount_u"),
        ({**BODY, "amount_u": None}, "amount_u"),
        ({**BODY, "currency": "BTC"}, "currency"),
        ({**BODY, "currency": "usdc"}, "currency"),
        ({**BODY, "provider": "paypal"}, "provider"),
        ({**BODY, "destination": "IBAN DE00"}, "destination"),
        ({"currency": "USDC", "provider": "adyen", "destination": destination_for("adyen")}, "amount_u"),
        ({"amount_u": 5_000_000, "provider": "adyen", "destination": destination_for("adyen")}, "currency"),
        ({"amount_u": 5_000_000, "currency": "USDC"}, "provider"),
        ([], "non_field_errors"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    body: Any, field: str, funded_player: Any, api_client_for: Any
) -> None:
    frozen, before = snapshot(), balances(funded_player)
    problem = assert_problem(post_withdrawal(api_client_for(funded_player), body), 400, "validation-error")
    assert field in problem["errors"]
    assert snapshot() == frozen
    assert balances(funded_player) == before


def test_anonymous_is_refused(db: Any) -> None:
    from rest_framework.test import APIClient

    assert_problem(APIClient().post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k"), 401)


# --- Reading and cancelling --------------------------------------------------------------------


def test_player_lists_and_reads_only_their_own(
    funded_player: Any, make_player: Any, fund: Any, api_client_for: Any
) -> None:
    other = make_player()
    fund(other, 10_000_000)
    mine = withdrawal_request(
        user=funded_player, amount_u=1_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    withdrawal_request(
        user=funded_player,
        amount_u=2_000_000,
        currency="USDC",
        provider="stripe",
        destination=destination_for("stripe"),
    )
    theirs = withdrawal_request(
        user=other, amount_u=3_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    client = api_client_for(funded_player)

    page = client.get(URL, {"limit": 1}).json()
    assert page["count"] == 2
    assert len(page["results"]) == 1
    assert client.get(f"{URL}/{mine.pk}").json()["amount_u"] == 1_000_000
    assert_problem(client.get(f"{URL}/{theirs.pk}"), 404)

    frozen = snapshot()
    assert_problem(client.post(f"{URL}/{theirs.pk}/cancel"), 404)
    assert snapshot() == frozen


def test_player_cancels_while_requested(
    funded_player: Any, api_client_for: Any, assert_ledger_ok: Any, finance: Any
) -> None:
    before = balances(funded_player)
    client = api_client_for(funded_player)
    created = post_withdrawal(client, BODY).json()
    response = client.post(f"{URL}/{created['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert balances(funded_player) == before

    second = post_withdrawal(client, BODY, key="key-2").json()
    withdrawal_approve(withdrawal_id=second["id"], acting_user=finance)
    frozen = snapshot()
    assert_problem(client.post(f"{URL}/{second['id']}/cancel"), 409, "payouts/invalid-transition")
    assert snapshot() == frozen
    assert_ledger_ok()


# --- Operators ------------------------------------------------------------------------------


def test_players_and_support_cannot_approve_or_reject(funded_player: Any, support: Any, api_client_for: Any) -> None:
    withdrawal = withdrawal_request(
        user=funded_player, amount_u=1_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    frozen = snapshot()
    assert_problem(api_client_for(funded_player).post(f"{URL}/{withdrawal.pk}/approve"), 403)
    assert_problem(api_client_for(support).post(f"{URL}/{withdrawal.pk}/approve"), 403, "payouts/forbidden")
    assert_problem(
        api_client_for(support).post(f"{URL}/{withdrawal.pk}/reject", {"reason": "no"}), 403, "payouts/forbidden"
    )
    assert snapshot() == frozen


def test_reject_needs_a_reason_and_releases(finance: Any, api_client_for: Any, assert_ledger_ok: Any) -> None:
    withdrawal = WithdrawalFactory.create(amount_u=1_000_000)
    client = api_client_for(finance)
    frozen = snapshot()
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        assert_problem(
            client.post(f"{URL}/{withdrawal.pk}/reject", body, format="json"), 400, "payouts/reason-required"
        )
    assert snapshot() == frozen
    response = client.post(f"{URL}/{withdrawal.pk}/reject", {"reason": "KYC mismatch"}, format="json")
    assert response.json()["state"] == "rejected"
    assert balances(withdrawal.user) == Balances(available_u=1_000_000, held_u=0)
    assert_ledger_ok()


def test_second_approval_is_a_conflict(finance: Any, finance2: Any, api_client_for: Any) -> None:
    withdrawal = WithdrawalFactory.create()
    assert api_client_for(finance).post(f"{URL}/{withdrawal.pk}/approve").status_code == 200
    frozen = snapshot()
    assert_problem(api_client_for(finance2).post(f"{URL}/{withdrawal.pk}/approve"), 409, "payouts/invalid-transition")
    assert snapshot() == frozen


def test_four_eyes_above_the_threshold(
    funded_player: Any,
    finance: Any,
    finance2: Any,
    api_client_for: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.FOUR_EYES_THRESHOLDS = {"USDC": "2"}
    small = withdrawal_request(
        user=funded_player, amount_u=2_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    big = withdrawal_request(
        user=funded_player, amount_u=2_000_001, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    first, second = api_client_for(finance), api_client_for(finance2)

    assert first.post(f"{URL}/{small.pk}/approve").json()["state"] == "approved"  # at the threshold: one is enough

    mark = AuditRecord.objects.order_by("-id").values_list("id", flat=True).first()
    response = first.post(f"{URL}/{big.pk}/approve", {"reason": "looks fine"}, format="json")
    assert response.status_code == 202
    assert response.json()["state"] == "requested"
    assert [s["operator"] for s in response.json()["pending_signoffs"]] == [finance.email]

    frozen = snapshot()
    assert_problem(first.post(f"{URL}/{big.pk}/approve"), 409, "approvals/second-operator-required")
    assert snapshot() == frozen

    assert_problem(second.post(f"{URL}/{big.pk}/approve"), 400, "approvals/reason-required")  # the checker's own
    assert snapshot() == frozen

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = second.post(f"{URL}/{big.pk}/approve", {"reason": "destination checked"}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "approved"
    assert len(callbacks) == 1
    rows = AuditRecord.objects.filter(id__gt=mark)
    assert sorted((r.action, r.actor_label, r.reason) for r in rows) == [
        ("approvals.apply", finance2.email, "destination checked"),
        ("approvals.propose", finance.email, "looks fine"),
        ("payouts.withdrawal.approve", finance2.email, "destination checked"),
    ]


def test_four_eyes_for_manual_resolution(
    stub: Any,
    funded_player: Any,
    finance: Any,
    finance2: Any,
    api_client_for: Any,
    settings: Any,
    assert_ledger_ok: Any,
) -> None:
    settings.FOUR_EYES_THRESHOLDS = {"USDC": "1"}
    before = balances(funded_player)
    withdrawal = WithdrawalFactory.create(
        user=funded_player, amount_u=5_000_000, failed=True, psp=stub, approver=finance, checker=finance2
    )
    url = f"/v1/payouts/{withdrawal.pk}/resolve"

    response = api_client_for(finance).post(
        url, {"decision": "refund_failed", "reason": "gateway confirmed failure"}, format="json"
    )
    assert response.status_code == 202
    assert response.json()["state"] == "payout_failed"
    assert balances(funded_player).held_u == 5_000_000
    # The same operator cannot complete it; a different decision by another operator does not either.
    assert_problem(
        api_client_for(finance).post(url, {"decision": "refund_failed", "reason": "again"}, format="json"),
        409,
        "approvals/second-operator-required",
    )
    assert_problem(
        api_client_for(finance2).post(url, {"decision": "confirm_sent", "reason": "not sure"}, format="json"),
        409,
        "approvals/refused",
    )
    assert balances(funded_player).held_u == 5_000_000
    response = api_client_for(finance2).post(
        url, {"decision": "refund_failed", "reason": "agree: failed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["state"] == "refunded"
    assert balances(funded_player) == before
    assert_ledger_ok()


def test_manual_review_api(
    stub: Any,
    funded_player: Any,
    finance: Any,
    finance2: Any,
    support: Any,
    api_client_for: Any,
    assert_ledger_ok: Any,
) -> None:
    ids = [withdrawal.pk for withdrawal in WithdrawalFactory.create_batch(3, failed=True, psp=stub)]

    page = api_client_for(support).get("/v1/payouts/manual-review?limit=2&offset=0").json()
    assert page["count"] == 3
    assert [row["id"] for row in page["results"]] == ids[:2]
    assert_problem(api_client_for(funded_player).get("/v1/payouts/manual-review"), 403)

    url = f"/v1/payouts/{ids[0]}/resolve"
    frozen = snapshot()
    assert_problem(
        api_client_for(support).post(url, {"decision": "refund_failed", "reason": "x"}, format="json"),
        403,
        "payouts/forbidden",
    )
    for reason_body in ({}, {"reason": ""}, {"reason": " \n"}):
        assert_problem(
            api_client_for(finance).post(url, {"decision": "refund_failed", **reason_body}, format="json"),
            400,
            "payouts/reason-required",
        )
    assert_problem(api_client_for(finance).post(url, {"decision": "delete", "reason": "x"}, format="json"), 400)
    assert snapshot() == frozen

    response = api_client_for(finance).post(
        url,
        {"decision": "confirm_sent", "reason": "gateway confirmed settlement"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="resolve-1",
    )
    # The PSP never said paid: confirming it sent is a proposal; a second operator applies it.
    assert response.status_code == 202 and response.json()["state"] == "payout_failed"
    replay = api_client_for(finance).post(
        url,
        {"decision": "confirm_sent", "reason": "gateway confirmed settlement"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="resolve-1",
    )
    assert replay["Idempotent-Replayed"] == "true"
    second = api_client_for(finance2).post(url, {"decision": "confirm_sent", "reason": "agreed"}, format="json")
    assert second.status_code == 200 and second.json()["state"] == "paid"
    assert_problem(
        api_client_for(finance).post(url, {"decision": "refund_failed", "reason": "oops"}, format="json"),
        409,
        "payouts/invalid-transition",
    )
    assert api_client_for(support).get("/v1/payouts/manual-review").json()["count"] == 2
    assert_ledger_ok()


def test_state_cannot_be_set_directly(db: Any) -> None:
    withdrawal = WithdrawalFactory.create()
    with pytest.raises(AttributeError, match="Direct state modification is not allowed"):
        withdrawal.state = Withdrawal.State.PAID


def test_operators_cannot_withdraw(finance: Any, fund: Any, api_client_for: Any) -> None:
    with pytest.raises(NotAPlayer):
        fund(finance, 5_000_000)  # operators hold no balance at all
    frozen = snapshot()
    assert_problem(post_withdrawal(api_client_for(finance), BODY), 403, "accounts/not-a-player")
    assert snapshot() == frozen
