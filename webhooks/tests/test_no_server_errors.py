"""Correctly signed Stripe deliveries whose JSON is not an object: a 400 problem+json, nothing stored,
on the deposit webhook and on the payout webhook; an oversized payout webhook body is a 413 problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from payouts.tests.helpers import snapshot as payouts_snapshot
from webhooks.stub.signing import stripe_signature_header

from .helpers import snapshot

pytestmark = pytest.mark.django_db

NOT_OBJECTS = ["[1,2,3]", '"a string"', "42", "null"]


def _post_signed(url: str, payload: str) -> Any:
    return Client().post(
        url,
        data=payload.encode(),
        content_type="application/json",
        headers={"Stripe-Signature": stripe_signature_header(payload, settings.STRIPE_WEBHOOK_SECRET)},
    )


def _assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"] and body["detail"]
    return body


@pytest.mark.parametrize("payload", NOT_OBJECTS)
def test_a_signed_stripe_deposit_event_that_is_not_an_object_is_refused(payload: str) -> None:
    before = snapshot()
    body = _assert_problem(_post_signed("/webhooks/stripe", payload), 400)
    assert body["type"] == "webhook/malformed"
    assert snapshot() == before


@pytest.mark.parametrize("payload", NOT_OBJECTS)
def test_a_signed_stripe_payout_event_that_is_not_an_object_is_refused(payload: str) -> None:
    before = payouts_snapshot()
    _assert_problem(_post_signed("/webhooks/payouts/stripe", payload), 400)
    assert payouts_snapshot() == before


@pytest.mark.parametrize("url", ["/webhooks/payouts/stripe", "/webhooks/payouts/adyen"])
def test_a_3_mib_payout_webhook_body_is_413_problem_json(url: str) -> None:
    before = payouts_snapshot()
    body = b'{"pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = Client().post(
        url, data=body, content_type="application/json", headers={"Stripe-Signature": "t=1,v1=00", "HmacSignature": "x"}
    )
    _assert_problem(response, 413)
    assert payouts_snapshot() == before
