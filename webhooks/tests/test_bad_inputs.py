"""The table of bad inputs to the signed deposit webhook: each gets its status and problem type, and nothing
moves (balances, journals, events, deposits, and nothing handed to the worker).

| input                                  | status | problem type                     |
|----------------------------------------|--------|----------------------------------|
| malformed JSON                         | 400    | webhook/malformed                |
| a JSON array, not an object            | 400    | webhook/malformed                |
| wrong content type (text/plain)        | 415    | webhook/unsupported-media-type   |
| body over WEBHOOK_MAX_BODY_BYTES       | 413    | webhook/payload-too-large        |
| amount_u 0                             | 400    | webhook/invalid-amount           |
| amount_u negative                      | 400    | webhook/invalid-amount           |
| amount_u a string ("100")              | 400    | webhook/invalid-amount           |
| amount_u a float (100.5, 100.0)        | 400    | webhook/invalid-amount           |
| amount_u true                          | 400    | webhook/invalid-amount           |
| amount_u missing                       | 400    | webhook/invalid-amount           |
| unknown currency                       | 400    | webhook/unknown-currency         |
| user_id not a UUID                     | 400    | webhook/invalid-payload          |
| unknown user                           | 422    | webhook/unknown-user             |
| empty reference                        | 400    | webhook/invalid-payload          |
| unexpected field                       | 400    | webhook/invalid-payload          |
| same reference, different payload      | 409    | webhook/reference-mismatch       |

Every body is correctly signed, so the refusal is about the input, not the signature.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.conf import settings

from webhooks.stub import SignedWebhook, custody_signature

from .helpers import CUSTODY_URL, available, custody_delivery, custody_payload, snapshot

pytestmark = pytest.mark.django_db


def _signed(body: bytes, content_type: str = "application/json") -> SignedWebhook:
    return SignedWebhook(
        body,
        {"Content-Type": content_type, "X-Webhook-Signature": custody_signature(body, settings.CUSTODY_WEBHOOK_KEY)},
    )


def _with(player: Any, **changes: Any) -> SignedWebhook:
    payload = {**custody_payload(player), **changes}
    payload = {k: v for k, v in payload.items() if v is not _MISSING}
    return custody_delivery(payload)


_MISSING = object()

CASES = [
    ("malformed-json", lambda p: _signed(b'{"reference": "r1", "amount_u": 1'), 400, "webhook/malformed"),
    ("json-array", lambda p: _signed(b"[1, 2, 3]"), 400, "webhook/malformed"),
    (
        "wrong-content-type",
        lambda p: _signed(json.dumps(custody_payload(p)).encode(), "text/plain"),
        415,
        "webhook/unsupported-media-type",
    ),
    (
        "form-content-type",
        lambda p: _signed(b"reference=r1&amount_u=1", "application/x-www-form-urlencoded"),
        415,
        "webhook/unsupported-media-type",
    ),
    (
        "oversized",
        lambda p: _signed(json.dumps({**custody_payload(p), "pad": "x" * settings.WEBHOOK_MAX_BODY_BYTES}).encode()),
        413,
        "webhook/payload-too-large",
    ),
    ("amount-zero", lambda p: _with(p, amount_u=0), 400, "webhook/invalid-amount"),
    ("amount-negative", lambda p: _with(p, amount_u=-5_000_000), 400, "webhook/invalid-amount"),
    ("amount-string", lambda p: _with(p, amount_u="100"), 400, "webhook/invalid-amount"),
    ("amount-float", lambda p: _with(p, amount_u=100.5), 400, "webhook/invalid-amount"),
    ("amount-whole-float", lambda p: _with(p, amount_u=100.0), 400, "webhook/invalid-amount"),
    ("amount-bool", lambda p: _with(p, amount_u=True), 400, "webhook/invalid-amount"),
    ("amount-missing", lambda p: _with(p, amount_u=_MISSING), 400, "webhook/invalid-amount"),
    ("amount-huge", lambda p: _with(p, amount_u=10**30), 400, "webhook/invalid-amount"),
    ("unknown-currency", lambda p: _with(p, currency="DOGE"), 400, "webhook/unknown-currency"),
    ("lowercase-currency", lambda p: _with(p, currency="usdc"), 400, "webhook/unknown-currency"),
    ("user-not-uuid", lambda p: _with(p, user_id="42"), 400, "webhook/invalid-payload"),
    ("unknown-user", lambda p: _with(p, user_id=str(uuid.uuid4())), 422, "webhook/unknown-user"),
    ("empty-reference", lambda p: _with(p, reference=""), 400, "webhook/invalid-payload"),
    ("unexpected-field", lambda p: _with(p, fee_u=1), 400, "webhook/invalid-payload"),
]


@pytest.mark.parametrize(("build", "status", "problem_type"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_nothing_moves(
    player: Any, deliver: Any, enqueued: list[int], build: Any, status: int, problem_type: str
) -> None:
    before = snapshot()

    response = deliver(CUSTODY_URL, build(player))

    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["type"], body["status"]) == (problem_type, status)
    assert body["title"] and body["detail"]
    assert snapshot() == before
    assert enqueued == []


def test_reference_mismatch_is_409_and_credits_nothing(
    player: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    payload = custody_payload(player, amount_u=5_000_000, reference="tx-mismatch-1")
    assert deliver(CUSTODY_URL, custody_delivery(payload)).status_code == 202
    assert available(player, "USDC") == 5_000_000
    before = snapshot()

    for drift in ({"amount_u": 50_000_000}, {"currency": "USD"}):
        response = deliver(CUSTODY_URL, custody_delivery({**payload, **drift}))

        assert response.status_code == 409
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == "webhook/reference-mismatch"
        assert response.json()["reference"] == "tx-mismatch-1"
    assert snapshot() == before
    assert available(player, "USDC") == 5_000_000
    assert inline_worker == []  # the first delivery was credited in its request; the refused ones sent nothing
    assert_ledger_ok()


def test_get_is_not_allowed(client: Any) -> None:
    assert client.get(CUSTODY_URL).status_code == 405
