"""Receiving: the payload hash is RFC 8785 canonical JSON; a payload with no canonical form is a 400, never a 500."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from ops.canonical import canonical_sha256
from webhooks.models import WebhookEvent
from webhooks.receiving import payload_hash
from webhooks.stub import SignedWebhook
from webhooks.stub.signing import stripe_signature_header

from .helpers import CUSTODY_URL, STRIPE_URL, custody_delivery, custody_payload, snapshot


def _json_dumps_hash(payload: Any) -> str:
    """The hash events were stored with before RFC 8785 (kept here only to compare against)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _signed_stripe(body: str) -> SignedWebhook:
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature_header(body, settings.STRIPE_WEBHOOK_SECRET),
    }
    return SignedWebhook(body.encode("utf-8"), headers)


def test_the_payload_hash_ignores_key_order_and_spacing() -> None:
    assert payload_hash({"b": [1, 2.5], "a": "x"}) == payload_hash(json.loads('{ "a" : "x", "b" : [1, 2.50] }'))
    assert payload_hash({"a": 1}) == canonical_sha256({"a": 1}, floats=True)


@given(
    reference=st.text(min_size=1, max_size=150),
    amount_u=st.integers(min_value=1, max_value=2**53 - 1),
    currency=st.sampled_from(["USDC", "USD", "EUR"]),
)
def test_a_custody_payload_hashes_the_same_as_before_rfc8785(reference: str, amount_u: int, currency: str) -> None:
    """So a custody deposit stored before the hash changed and retried after it is a duplicate, not a 409."""
    payload = {"reference": reference, "user_id": "4a7c9e4e-4f4b-4e4b-9c1d-2b2f0e1d3c4a", "amount_u": amount_u}
    payload["currency"] = currency
    try:
        old = _json_dumps_hash(payload)
    except UnicodeEncodeError:  # a lone surrogate: the old function raised (a 500), the new one refuses (a 400)
        return
    assert payload_hash(payload) == old


@pytest.mark.django_db
def test_a_custody_retry_of_an_event_stored_under_the_old_hash_is_a_duplicate(
    player: Any, deliver: Any, enqueued: list[int]
) -> None:
    payload = custody_payload(player, reference="tx-before-the-deploy")
    assert deliver(CUSTODY_URL, custody_delivery(payload)).status_code == 202
    WebhookEvent.objects.filter(event_id="tx-before-the-deploy").update(payload_hash=_json_dumps_hash(payload))
    before = snapshot()

    again = deliver(CUSTODY_URL, custody_delivery(payload))

    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra",
    ['"amount_received": NaN', '"amount_received": Infinity', f'"amount_received": {2**64}', '"note": "\\ud800"'],
    ids=["nan", "infinity", "int-beyond-2**53", "lone-surrogate"],
)
def test_a_signed_stripe_event_with_no_canonical_json_is_a_400_and_stores_nothing(
    deliver: Any, enqueued: list[int], extra: str
) -> None:
    before = snapshot()
    body = '{"id": "evt_odd", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1", ' + extra + "}}}"

    response = deliver(STRIPE_URL, _signed_stripe(body))

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "webhook/malformed"
    assert snapshot() == before
    assert not WebhookEvent.objects.exists()
    assert enqueued == []
