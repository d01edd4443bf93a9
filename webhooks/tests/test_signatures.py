"""Signatures made the providers' own way: a good one credits; a wrong, missing or expired one is a 400
problem+json, and nothing is credited, stored or enqueued."""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

import pytest
import stripe

from webhooks.models import Deposit, WebhookEvent
from webhooks.stub import (
    SignedWebhook,
    adyen_notification,
    adyen_notification_request,
    stripe_signature_header,
)

from .helpers import (
    ADYEN_URL,
    CUSTODY_URL,
    STRIPE_URL,
    adyen_delivery,
    adyen_item,
    available,
    custody_delivery,
    custody_payload,
    payment_intent,
    pending_deposit,
    snapshot,
    stripe_delivery,
)

pytestmark = pytest.mark.django_db

# Adyen's published example (Adyen/adyen-python-api-library test/test_util.py), signed with the
# published key that config/settings/test.py uses as ADYEN_HMAC_KEY.
PUBLISHED_ITEM = {
    "pspReference": "7914073381342284",
    "merchantReference": "TestPayment-1407325143704",
    "merchantAccountCode": "TestMerchant",
    "amount": {"currency": "EUR", "value": 1130},
    "eventCode": "AUTHORISATION",
    "success": "true",
    "eventDate": "2019-05-06T17:15:34.121+02:00",
    "operations": ["CANCEL", "CAPTURE", "REFUND"],
    "paymentMethod": "visa",
    "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
}

# A custody vector computed independently (openssl dgst -sha256 -hmac custody-test-key).
CUSTODY_USER = uuid.UUID("00000000-0000-4000-8000-000000000001")
CUSTODY_BODY = (
    b'{"amount_u":1000000,"currency":"USDC","reference":"tx-known-vector-1",'
    b'"user_id":"00000000-0000-4000-8000-000000000001"}'
)
CUSTODY_SIGNATURE = "4e66a9b21185bdf079e140203c261c6f3b8d5f47d2646e3b761e2f20c8e5cd81"


def assert_refused(response: Any, status: int, problem_type: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["type"], body["status"]) == (problem_type, status)


# --- Stripe ----------------------------------------------------------------------------------------


def test_stripe_good_signature_credits_once(
    player: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player)
    event, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))

    response = deliver(STRIPE_URL, delivery)

    assert response.status_code == 200 and response.json()["received"] is True
    assert available(player, "USD") == 2500
    stored = WebhookEvent.objects.get(provider="stripe", event_id=event["id"])
    assert (stored.status, stored.journal_reference) == ("processed", f"deposit:stripe:{deposit.psp_id}")
    assert stored.headers["Stripe-Signature"] == delivery.headers["Stripe-Signature"]
    assert stored.raw_body.encode() == delivery.body  # the raw event, re-verifiable later
    stripe.Webhook.construct_event(
        stored.raw_body, stored.headers["Stripe-Signature"], "whsec_test_secret", tolerance=300
    )
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.CREDITED
    assert_ledger_ok()


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda d: {**d.headers, "Stripe-Signature": stripe_signature_header(d.body.decode(), "whsec_wrong")},
            id="wrong-secret",
        ),
        pytest.param(lambda d: {k: v for k, v in d.headers.items() if k != "Stripe-Signature"}, id="missing"),
        pytest.param(
            lambda d: {
                **d.headers,
                "Stripe-Signature": stripe_signature_header(
                    d.body.decode(), "whsec_test_secret", int(time.time()) - 301
                ),
            },
            id="expired-301s",
        ),
        pytest.param(
            lambda d: {
                **d.headers,
                "Stripe-Signature": stripe_signature_header(
                    d.body.decode(), "whsec_test_secret", int(time.time()) + 600
                ),
            },
            id="future-10min",
        ),
        pytest.param(
            lambda d: {
                **d.headers,
                "Stripe-Signature": stripe_signature_header(
                    d.body.decode(), "whsec_test_secret", int(time.time()) + 301
                ),
            },
            id="future-301s",
        ),
        pytest.param(lambda d: {**d.headers, "Stripe-Signature": "t=1,v1=deadbeef"}, id="garbage"),
    ],
)
def test_stripe_bad_signature_is_refused_and_changes_nothing(
    player: Any, deliver: Any, enqueued: list[int], tamper: Any
) -> None:
    deposit = pending_deposit(player)
    _, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    before = snapshot()

    response = deliver(STRIPE_URL, SignedWebhook(delivery.body, tamper(delivery)))

    assert_refused(response, 400, "webhook/invalid-signature")
    assert snapshot() == before
    assert enqueued == []


def test_stripe_signature_a_little_in_the_future_is_accepted(
    player: Any, deliver: Any, inline_worker: list[int]
) -> None:
    """Clock skew within the tolerance (a minute ahead) is not a refusal."""
    deposit = pending_deposit(player)
    _, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    header = stripe_signature_header(delivery.body.decode(), "whsec_test_secret", int(time.time()) + 60)

    response = deliver(STRIPE_URL, SignedWebhook(delivery.body, {**delivery.headers, "Stripe-Signature": header}))

    assert response.status_code == 200 and available(player, "USD") == 2500


def test_stripe_body_changed_after_signing_is_refused(player: Any, deliver: Any, enqueued: list[int]) -> None:
    deposit = pending_deposit(player)
    _, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    before = snapshot()
    forged = delivery.body.replace(b'"amount_received": 2500', b'"amount_received": 250000')
    assert forged != delivery.body

    response = deliver(STRIPE_URL, SignedWebhook(forged, delivery.headers))

    assert_refused(response, 400, "webhook/invalid-signature")
    assert snapshot() == before and enqueued == []


def test_stripe_timestamp_within_tolerance_is_accepted(player: Any, deliver: Any, inline_worker: list[int]) -> None:
    deposit = pending_deposit(player)
    _, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit), timestamp=int(time.time()) - 250)

    assert deliver(STRIPE_URL, delivery).status_code == 200
    assert available(player, "USD") == 2500


# --- Adyen -----------------------------------------------------------------------------------------


def _published(item: dict[str, Any]) -> SignedWebhook:
    return adyen_notification_request(adyen_notification([item]))


def test_adyen_published_example_is_accepted(deliver: Any, inline_worker: list[int]) -> None:
    response = deliver(ADYEN_URL, _published(copy.deepcopy(PUBLISHED_ITEM)))

    assert response.status_code == 200
    assert response.content == b"[accepted]"
    event = WebhookEvent.objects.get(provider="adyen")
    assert event.event_id == "AUTHORISATION:7914073381342284:true"
    # Authentic, but no deposit of ours has that merchantReference: stored and flagged, not credited.
    assert event.status == WebhookEvent.Status.FLAGGED
    assert "No adyen deposit" in event.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pspReference", "7914073381342285"),
        ("merchantReference", "TestPayment-1407325143705"),
        ("amount", {"currency": "EUR", "value": 1131}),
        ("success", "false"),
        ("eventCode", "REFUND"),
    ],
)
def test_adyen_published_example_with_one_field_changed_is_refused(
    deliver: Any, enqueued: list[int], field: str, value: Any
) -> None:
    item = copy.deepcopy(PUBLISHED_ITEM)
    item[field] = value
    before = snapshot()

    response = deliver(ADYEN_URL, _published(item))

    assert_refused(response, 400, "webhook/invalid-signature")
    assert snapshot() == before and enqueued == []


def test_adyen_checks_every_item_not_only_the_first(player: Any, deliver: Any, enqueued: list[int]) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR")
    good = adyen_item(deposit)
    forged = adyen_item(deposit, hmac_key="00" * 32)  # signed with another key
    before = snapshot()

    response = deliver(ADYEN_URL, adyen_delivery(good, forged))

    assert_refused(response, 400, "webhook/invalid-signature")
    assert "notificationItems[1]" in response.json()["detail"]
    assert snapshot() == before and enqueued == []


def test_adyen_item_without_signature_is_refused(player: Any, deliver: Any, enqueued: list[int]) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR")
    item = adyen_item(deposit)
    del item["additionalData"]
    before = snapshot()

    assert_refused(deliver(ADYEN_URL, adyen_delivery(item)), 400, "webhook/invalid-signature")
    assert snapshot() == before and enqueued == []


def test_adyen_good_signature_credits_once(
    player: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR", amount_u=1130)
    item = adyen_item(deposit)

    assert deliver(ADYEN_URL, adyen_delivery(item)).content == b"[accepted]"
    assert deliver(ADYEN_URL, adyen_delivery(item)).content == b"[accepted]"

    assert available(player, "EUR") == 1130
    assert WebhookEvent.objects.filter(provider="adyen").count() == 1
    deposit.refresh_from_db()
    assert (deposit.status, deposit.psp_payment_reference) == ("credited", item["pspReference"])
    assert_ledger_ok()


# --- Custody ---------------------------------------------------------------------------------------


def test_custody_known_vector_is_accepted(make_player: Any, deliver: Any, inline_worker: list[int]) -> None:
    player = make_player(public_id=CUSTODY_USER)

    response = deliver(
        CUSTODY_URL,
        SignedWebhook(CUSTODY_BODY, {"Content-Type": "application/json", "X-Webhook-Signature": CUSTODY_SIGNATURE}),
    )

    assert response.status_code == 202, response.content
    assert available(player, "USDC") == 1_000_000
    assert WebhookEvent.objects.get().journal_reference == "deposit:custody:tx-known-vector-1"


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param(CUSTODY_SIGNATURE[:-1] + "0", id="one-digit-off"),
        pytest.param("sha256=" + CUSTODY_SIGNATURE, id="prefixed"),
    ],
)
def test_custody_bad_signature_is_refused(
    make_player: Any, deliver: Any, enqueued: list[int], signature: str | None
) -> None:
    make_player(public_id=CUSTODY_USER)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Webhook-Signature"] = signature
    before = snapshot()

    response = deliver(CUSTODY_URL, SignedWebhook(CUSTODY_BODY, headers))

    assert_refused(response, 400, "webhook/invalid-signature")
    assert snapshot() == before and enqueued == []


def test_custody_signed_with_another_key_is_refused(player: Any, deliver: Any, enqueued: list[int]) -> None:
    before = snapshot()

    response = deliver(CUSTODY_URL, custody_delivery(custody_payload(player), key="not-the-shared-key"))

    assert_refused(response, 400, "webhook/invalid-signature")
    assert snapshot() == before and enqueued == []


def test_custody_signature_is_over_the_raw_bytes(player: Any, deliver: Any, enqueued: list[int]) -> None:
    delivery = custody_delivery(custody_payload(player))
    reformatted = json.dumps(json.loads(delivery.body), indent=1).encode()  # same JSON, other bytes
    before = snapshot()

    response = deliver(CUSTODY_URL, SignedWebhook(reformatted, delivery.headers))

    assert_refused(response, 400, "webhook/invalid-signature")
    assert snapshot() == before and enqueued == []


def test_signature_verified_is_logged_for_the_go_live_webhook_watch(
    make_player: Any, deliver: Any, inline_worker: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """The go-live runbook: "Tail logs for `Signature Verified` events" — only for good signatures."""
    make_player(public_id=CUSTODY_USER)
    with caplog.at_level("INFO", logger="webhooks.views"):
        deliver(
            CUSTODY_URL,
            SignedWebhook(
                CUSTODY_BODY, {"Content-Type": "application/json", "X-Webhook-Signature": CUSTODY_SIGNATURE[:-1] + "0"}
            ),
        )
        assert "Signature Verified" not in caplog.text
        deliver(
            CUSTODY_URL,
            SignedWebhook(CUSTODY_BODY, {"Content-Type": "application/json", "X-Webhook-Signature": CUSTODY_SIGNATURE}),
        )
    assert "Signature Verified: custody webhook" in caplog.text
