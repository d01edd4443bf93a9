"""`POST /v1/deposits` through the real Stripe and Adyen SDKs against the local PSP stub, then the matching
signed webhook credits it once. The PSP's idempotency key is our deposit reference."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ledger.models import Journal
from webhooks.models import Deposit, WebhookEvent
from webhooks.stub import PSPStub

from .helpers import (
    ADYEN_URL,
    STRIPE_URL,
    adyen_delivery,
    adyen_item,
    available,
    snapshot,
    stripe_delivery,
)

pytestmark = pytest.mark.django_db
URL = "/v1/deposits"


def _start(api: Any, body: dict[str, Any], key: str | None = None) -> Any:
    return api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def test_stripe_deposit_start_then_webhook_credits_once(
    stub: PSPStub, player: Any, api_client_for: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    api = api_client_for(player)
    key = str(uuid.uuid4())

    first = _start(api, {"provider": "stripe", "amount_u": 2500, "currency": "USD"}, key)
    replayed = _start(api, {"provider": "stripe", "amount_u": 2500, "currency": "USD"}, key)

    assert first.status_code == 201, first.content
    assert replayed.status_code == 201 and replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == first.json()
    body = first.json()
    deposit = Deposit.objects.get(public_id=body["id"])
    assert (deposit.status, deposit.reference, body["status"]) == ("pending", body["reference"], "pending")
    assert body["client_secret"].startswith(f"{deposit.psp_id}_secret_")
    assert stub.submissions(deposit.reference) == 1
    (intent,) = stub.objects("stripe_payment_intent")
    assert intent["metadata"]["deposit_reference"] == deposit.reference
    assert deposit.flow_id.startswith("dep-") and intent["metadata"]["flow_id"] == deposit.flow_id
    assert (intent["amount"], intent["currency"]) == (2500, "usd")
    assert Journal.objects.count() == 0  # no money moves before the PSP confirms

    paid = {**intent, "status": "succeeded", "amount_received": intent["amount"]}
    _, delivery = stripe_delivery("payment_intent.succeeded", paid)
    for _ in range(2):
        assert deliver(STRIPE_URL, delivery).status_code == 200

    assert available(player, "USD") == 2500
    deposit.refresh_from_db()
    assert (deposit.status, deposit.psp_payment_reference) == ("credited", intent["id"])
    assert api.get(f"{URL}/{deposit.public_id}").json()["status"] == "credited"
    assert_ledger_ok()


def test_adyen_deposit_start_then_webhook_credits_once(
    stub: PSPStub, player: Any, api_client_for: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    api = api_client_for(player)
    key = str(uuid.uuid4())

    first = _start(api, {"provider": "adyen", "amount_u": 1130, "currency": "EUR"}, key)
    replayed = _start(api, {"provider": "adyen", "amount_u": 1130, "currency": "EUR"}, key)

    assert first.status_code == 201, first.content
    assert replayed.json() == first.json()
    body = first.json()
    assert body["session_id"].startswith("CS") and body["session_data"]
    deposit = Deposit.objects.get(public_id=body["id"])
    assert stub.submissions(deposit.reference) == 1
    (request,) = [r for r in stub.requests if r.kind == "adyen_session"]
    assert request.body["reference"] == deposit.reference
    assert request.body["amount"] == {"value": 1130, "currency": "EUR"}
    assert request.idempotency_key == deposit.reference
    assert deposit.flow_id.startswith("dep-") and request.body["metadata"] == {"flow_id": deposit.flow_id}
    (session,) = stub.objects("adyen_session")
    assert session["metadata"]["flow_id"] == deposit.flow_id

    item = adyen_item(deposit)
    for _ in range(2):
        assert deliver(ADYEN_URL, adyen_delivery(item)).content == b"[accepted]"

    assert available(player, "EUR") == 1130
    assert WebhookEvent.objects.get().status == "processed"
    assert_ledger_ok()


@pytest.mark.parametrize(
    ("provider", "kind", "mode"),
    [
        ("stripe", "stripe_payment_intent", "fail"),
        ("stripe", "stripe_payment_intent", "decline"),
        ("stripe", "stripe_payment_intent", "timeout"),
        ("adyen", "adyen_session", "fail"),
        ("adyen", "adyen_session", "decline"),
    ],
)
def test_psp_failure_is_502_and_the_deposit_is_kept_as_failed(
    stub: PSPStub, player: Any, api_client_for: Any, provider: str, kind: str, mode: str
) -> None:
    api = api_client_for(player)
    key = str(uuid.uuid4())
    journals = Journal.objects.count()
    stub.set_mode(kind, mode, times=1, delay=3.0 if mode == "timeout" else None)
    body = {"provider": provider, "amount_u": 2500, "currency": "EUR"}

    failed = _start(api, body, key)

    assert failed.status_code == 502, failed.content
    assert failed["Content-Type"] == "application/problem+json"
    assert failed.json()["type"] == "deposit/provider-error"
    deposit = Deposit.objects.get(user=player)
    assert deposit.status == Deposit.Status.FAILED and deposit.failure_reason
    assert Journal.objects.count() == journals

    # The key was released (a 5xx may be retried): the retry starts a new deposit with a new reference.
    retried = _start(api, body, key)

    assert retried.status_code == 201, retried.content
    new = Deposit.objects.get(public_id=retried.json()["id"])
    assert new.reference != deposit.reference and new.status == Deposit.Status.PENDING
    assert stub.submissions(new.reference) == 1


@pytest.mark.parametrize(
    ("body", "problem_type"),
    [
        ({"provider": "stripe", "amount_u": 2500, "currency": "USDC"}, "deposit/unsupported-currency"),
        ({"provider": "stripe", "amount_u": 2500, "currency": "DOGE"}, "webhook/unknown-currency"),
        ({"provider": "paypal", "amount_u": 2500, "currency": "USD"}, "validation-error"),
        ({"provider": "stripe", "amount_u": 0, "currency": "USD"}, "validation-error"),
        ({"provider": "stripe", "amount_u": -1, "currency": "USD"}, "validation-error"),
        ({"provider": "stripe", "amount_u": 25.5, "currency": "USD"}, "validation-error"),
        ({"provider": "stripe", "amount_u": "2500", "currency": "USD"}, "validation-error"),
    ],
)
def test_bad_deposit_start_is_refused_and_the_psp_is_not_called(
    stub: PSPStub, player: Any, api_client_for: Any, body: dict[str, Any], problem_type: str
) -> None:
    before = snapshot()

    response = _start(api_client_for(player), body)

    assert response.status_code == 400, response.content
    assert response.json()["type"] == problem_type
    assert snapshot() == before and stub.requests == []


def test_deposit_start_needs_an_idempotency_key(stub: PSPStub, player: Any, api_client_for: Any) -> None:
    response = api_client_for(player).post(URL, {"provider": "stripe", "amount_u": 1, "currency": "USD"}, format="json")

    assert (response.status_code, response.json()["type"]) == (400, "idempotency/key-required")
    assert stub.requests == []


def test_players_see_only_their_own_deposits(stub: PSPStub, make_player: Any, api_client_for: Any, client: Any) -> None:
    alice, bob = make_player(), make_player()
    mine = _start(api_client_for(alice), {"provider": "stripe", "amount_u": 100, "currency": "USD"}).json()
    _start(api_client_for(bob), {"provider": "stripe", "amount_u": 200, "currency": "USD"})

    listed = api_client_for(alice).get(URL).json()
    assert [d["id"] for d in listed["results"]] == [mine["id"]]
    assert api_client_for(bob).get(f"{URL}/{mine['id']}").status_code == 404
    assert api_client_for(alice).get(f"{URL}/{mine['id']}").json()["amount_u"] == 100
    assert client.get(URL).status_code in (401, 403)
