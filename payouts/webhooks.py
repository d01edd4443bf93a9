"""PSP webhooks that settle payouts: `/webhooks/payouts/adyen` and `/webhooks/payouts/stripe`.

The signature is checked on the raw body before anything is parsed or stored; a bad signature is a
400 problem+json and changes nothing. Each event is stored once (provider + event id) and applied
in the same transaction, so a duplicate delivery changes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ops.errors import ApplicationError, ServiceUnavailable, problem_json_response

from .errors import InvalidWebhook, WebhookTooLarge
from .services import PayoutNotice, payout_event_process

logger = logging.getLogger(__name__)

ADYEN_TRANSFER_EVENT = "balancePlatform.transfer.updated"
ADYEN_OUTCOMES = {"booked": "paid", "failed": "failed", "returned": "failed"}
STRIPE_OUTCOMES = {"payout.paid": "paid", "payout.failed": "failed"}


def _raw_body(request: HttpRequest) -> bytes:
    """Return the raw body within WEBHOOK_MAX_BODY_BYTES, or refuse it with 413 before reading it all."""
    limit = int(settings.WEBHOOK_MAX_BODY_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise WebhookTooLarge(f"The body is {declared} bytes; the limit is {limit}.")
    try:
        body = request.body
    except RequestDataTooBig:
        raise WebhookTooLarge(f"The body is over the limit of {limit} bytes.") from None
    if len(body) > limit:
        raise WebhookTooLarge(f"The body is {len(body)} bytes; the limit is {limit}.")
    return body


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidWebhook("Body is not JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidWebhook("Body is not a JSON object.")
    return payload


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


def _handle(request: HttpRequest, parse: Any) -> JsonResponse:
    try:
        return _answer(parse(request))
    except ApplicationError as exc:
        if exc.status < 500:
            logger.warning("payout webhook refused: %s", exc.detail)
        return problem_json_response(exc.problem())


def _adyen_notice(request: HttpRequest) -> PayoutNotice:
    from Adyen.util import generate_payload_sig

    key = settings.ADYEN_HMAC_KEY
    if not key:
        raise ServiceUnavailable("ADYEN_HMAC_KEY is not configured; cannot verify Adyen webhooks.")
    body = _raw_body(request)
    signature = request.headers.get("HmacSignature", "")
    expected = generate_payload_sig(body, key).decode("ascii")
    if not signature or not hmac.compare_digest(signature.encode(), expected.encode()):
        raise InvalidWebhook("Invalid HmacSignature; nothing was changed.")
    payload = _json_object(body)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
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
    import stripe

    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise ServiceUnavailable("STRIPE_WEBHOOK_SECRET is not configured; cannot verify Stripe webhooks.")
    body = _raw_body(request)
    try:
        stripe.WebhookSignature.verify_header(
            body.decode("utf-8"), request.headers.get("Stripe-Signature", ""), secret, tolerance=300
        )
    except (UnicodeDecodeError, stripe.SignatureVerificationError):
        raise InvalidWebhook("Invalid Stripe-Signature; nothing was changed.") from None
    payload = _json_object(body)  # signed, but refused unless a JSON object (the SDK would crash on it)
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
def adyen_payout_webhook(request: HttpRequest) -> JsonResponse:
    """Adyen Transfers webhook: booked -> paid; failed / returned -> payout_failed."""
    return _handle(request, _adyen_notice)


@csrf_exempt
@require_POST
def stripe_payout_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe webhook: payout.paid -> paid; payout.failed -> payout_failed."""
    return _handle(request, _stripe_notice)
