"""The on-call runbook's "Webhook Incident Handling", step by step, against the real endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from django.conf import settings

from ledger.models import Journal
from webhooks.models import WebhookEvent
from webhooks.stub import SignedWebhook

from .helpers import CUSTODY_URL, available, custody_payload, snapshot

pytestmark = pytest.mark.django_db


def _sign(body: bytes, key: str) -> SignedWebhook:
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return SignedWebhook(body, {"Content-Type": "application/json", "X-Webhook-Signature": signature})


def test_on_call_runbook_webhook_incident_handling(
    player: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    payload = custody_payload(player, amount_u=7_500_000, reference="tx-oncall-1")
    body = json.dumps(payload).encode()

    # 1. Verify X-Webhook-Signature generation and shared key: hex HMAC-SHA256 of the raw body.
    wrong_key = deliver(CUSTODY_URL, _sign(body, "an-old-rotated-key"))
    assert wrong_key.status_code == 400 and wrong_key.json()["type"] == "webhook/invalid-signature"
    assert WebhookEvent.objects.count() == 0 and available(player, "USDC") == 0

    first = deliver(CUSTODY_URL, _sign(body, settings.CUSTODY_WEBHOOK_KEY))
    assert first.status_code == 202, first.content
    assert available(player, "USDC") == 7_500_000
    after_first = snapshot()

    # 2. Check for webhook/reference-mismatch (payload drift on the same reference).
    drifted = json.dumps({**payload, "amount_u": 75_000_000}).encode()
    mismatch = deliver(CUSTODY_URL, _sign(drifted, settings.CUSTODY_WEBHOOK_KEY))
    assert mismatch.status_code == 409
    assert mismatch["Content-Type"] == "application/problem+json"
    assert mismatch.json()["type"] == "webhook/reference-mismatch"
    assert snapshot() == after_first

    # 3. Retry only with the same payload for the same reference: accepted, credits nothing more
    #    (even serialised differently: the payload, not its bytes, is compared).
    for retry_body in (body, json.dumps(payload, sort_keys=True, indent=2).encode()):
        retry = deliver(CUSTODY_URL, _sign(retry_body, settings.CUSTODY_WEBHOOK_KEY))
        assert retry.status_code == 200 and retry.json()["duplicate"] is True
    assert snapshot() == after_first
    assert available(player, "USDC") == 7_500_000
    assert Journal.objects.filter(reference="deposit:custody:tx-oncall-1").count() == 1
    assert_ledger_ok()
