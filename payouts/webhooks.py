"""PSP webhooks that settle payouts: `/webhooks/payouts/adyen` and `/webhooks/payouts/stripe`.

The body limit, the signature check on the raw body (before anything is parsed or stored), the JSON
parsing and the problem+json answer are the kernel's `ops.inbound`, shared with the deposit webhooks;
a bad signature is a 400 problem+json and changes nothing. Each event is stored once (provider + event
id) and applied in the same transaction, so a duplicate delivery changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ops import inbound
from ops.errors import ServiceUnavailable
from ops.inbound import problem_json_refusals

from .errors import InvalidWebhook, WebhookTooLarge
from .services import PayoutNotice, payout_event_process

logger = logging.getLogger(__name__)

ADYEN_TRANSFER_EVENT = "balancePlatform.transfer.updated"
ADYEN_OUTCOMES = {"booked": "paid", "failed": "failed", "returned": "failed"}
STRIPE_OUTCOMES = {"payout.paid": "paid", "payout.failed": "failed"}

# The payout webhooks' problem types: any bad body or signature is payouts/invalid-webhook (400), an oversized
# body payouts/webhook-too-large (413), a missing key service-unavailable (503); any Content-Type is read.
REFUSALS = inbound.Refusals(
    too_large=WebhookTooLarge,
    malformed=InvalidWebhook,
    bad_signature=InvalidWebhook,
    not_configured=ServiceUnavailable,
)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _answer(notice: PayoutNotice) -> JsonResponse:
    logger.info("Signature Verified: %s payout webhook %s", notice.provider, notice.event_id)
    event, duplicate = payout_event_process(notice=notice)
    logger.info(
        "payout webhook %s:%s %s -> %s%s",
        notice.provider,
        notice.event_id,
        notice.event_type,
        event.result,
        " (duplicate)" if duplicate else "",
    )
    return JsonResponse({"received": True, "duplicate": duplicate, "result": event.result})


def _adyen_notice(request: HttpRequest) -> PayoutNotice:
    body = inbound.raw_body(request, REFUSALS)
    inbound.adyen_payload_signature_verify(
        body=body, signature=request.headers.get("HmacSignature", ""), refusals=REFUSALS
    )
    payload = inbound.json_object(body, REFUSALS)
    data = _dict(payload.get("data"))
    transfer_id, status = str(data.get("id") or ""), str(data.get("status") or "")
    if not transfer_id:
        raise InvalidWebhook("Transfer webhook without data.id.")
    event_type = str(payload.get("type") or "")
    sequence = data.get("sequenceNumber")
    event_id = f"{transfer_id}:{event_type}:{status}" + (f":{sequence}" if sequence is not None else "")
    return PayoutNotice(
        provider="adyen",
        event_id=event_id[:200],
        event_type=event_type[:100],
        payload=payload,
        outcome=ADYEN_OUTCOMES.get(status, "") if event_type == ADYEN_TRANSFER_EVENT else "",
        idempotency_key=str(data.get("reference") or ""),
        psp_reference=transfer_id,
        detail=f"status={status} reason={data.get('reason', '')}",
    )


def _stripe_notice(request: HttpRequest) -> PayoutNotice:
    body = inbound.raw_body(request, REFUSALS)
    inbound.stripe_signature_verify(body=body, header=request.headers.get("Stripe-Signature", ""), refusals=REFUSALS)
    payload = inbound.json_object(
        body, REFUSALS
    )  # signed, but refused unless a JSON object (the SDK would crash on it)
    obj = _dict(_dict(payload.get("data")).get("object"))
    metadata = _dict(obj.get("metadata"))
    event_type = str(payload.get("type") or "")
    return PayoutNotice(
        provider="stripe",
        event_id=str(payload.get("id") or "")[:200],
        event_type=event_type[:100],
        payload=payload,
        outcome=STRIPE_OUTCOMES.get(event_type, "") if obj.get("object") == "payout" else "",
        idempotency_key=str(metadata.get("idempotency_key") or ""),
        psp_reference=str(obj.get("id") or ""),
        detail=f"status={obj.get('status', '')} {obj.get('failure_code') or ''}".strip(),
    )


@csrf_exempt
@require_POST
@problem_json_refusals
def adyen_payout_webhook(request: HttpRequest) -> HttpResponse:
    """Adyen Transfers webhook: booked -> paid; failed / returned -> payout_failed."""
    return _answer(_adyen_notice(request))


@csrf_exempt
@require_POST
@problem_json_refusals
def stripe_payout_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe webhook: payout.paid -> paid; payout.failed -> payout_failed."""
    return _answer(_stripe_notice(request))
