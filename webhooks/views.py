"""Webhook endpoints (plain Django views on the raw body) and the development deposit simulator.

* `POST /webhooks/stripe`   Stripe events (`Stripe-Signature`), answered `{"received": true}`.
* `POST /webhooks/adyen`    Adyen standard notifications (HMAC on every item), answered `[accepted]`.
* `POST /webhooks/deposits` custody / on-chain deposits (`X-Webhook-Signature`), answered 202.
* `POST /simulate/deposit_webhook` only while `settings.SIMULATION_ENABLED` (never in production).

Each webhook checks size, content type and signature before anything is parsed or stored, stores the
raw event, credits a plain confirmation in the request right after the store commits and leaves every
other event to a Celery task (`webhooks.receiving`), then answers 2xx. Every refusal is an
`application/problem+json` document, and a refused delivery stores, credits and enqueues nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ops import inbound
from ops.errors import problem_json_response
from ops.inbound import problem_json_refusals

from .deposits import simulated_deposit
from .models import Provider
from .receiving import (
    adyen_notification_receive,
    selected_headers,
    signed_deposit_receive,
    stripe_event_receive,
)
from .verification import (
    REFUSALS,
    adyen_items_verify,
    custody_signature_verify,
    json_object,
    stripe_event_verify,
)

logger = logging.getLogger(__name__)


def _log_verified(provider: str, what: Any) -> None:
    """The go-live runbook's webhook watch tails the logs for this line."""
    logger.info("Signature Verified: %s webhook %s", provider, what)


def raw_json_body(request: HttpRequest) -> bytes:
    """Return the raw body of a JSON POST within WEBHOOK_MAX_BODY_BYTES, or refuse it (413, 415)."""
    return inbound.raw_body(request, REFUSALS)


@csrf_exempt
@require_POST
@problem_json_refusals
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify and store a Stripe event; a plain confirmation is credited now, anything else in the worker."""
    body = raw_json_body(request)
    event = stripe_event_verify(body=body, signature_header=request.headers.get("Stripe-Signature", ""))
    _log_verified("stripe", event.get("id", ""))
    received = stripe_event_receive(event=event, headers=selected_headers(request.headers), raw_body=body)
    return JsonResponse({"received": True, "duplicate": received.duplicate, "status": received.event.status})


@csrf_exempt
@require_POST
@problem_json_refusals
def adyen_webhook(request: HttpRequest) -> HttpResponse:
    """Verify every item of an Adyen notification, store each, answer `[accepted]`."""
    body = raw_json_body(request)
    items = adyen_items_verify(body=body)
    _log_verified("adyen", f"{len(items)} item(s)")
    adyen_notification_receive(items=items, headers=selected_headers(request.headers), raw_body=body)
    return HttpResponse("[accepted]", content_type="text/plain")


@csrf_exempt
@require_POST
@problem_json_refusals
def custody_deposit_webhook(request: HttpRequest) -> HttpResponse:
    """Verify and store a custody deposit; the same reference with another payload is a 409."""
    body = raw_json_body(request)
    custody_signature_verify(body=body, signature=request.headers.get("X-Webhook-Signature", ""))
    _log_verified("custody", "")
    payload = json_object(body)
    received = signed_deposit_receive(
        provider=Provider.CUSTODY, payload=payload, headers=selected_headers(request.headers), raw_body=body
    )
    return JsonResponse(
        {
            "received": True,
            "duplicate": received.duplicate,
            "reference": received.event.event_id,
            "status": received.event.status,
        },
        status=200 if received.duplicate else 202,
    )


@csrf_exempt
@require_POST
@problem_json_refusals
def simulate_deposit_webhook(request: HttpRequest) -> HttpResponse:
    """Credit a confirmed deposit at once (development only); `amount_u` 0 returns the balance."""
    if not settings.SIMULATION_ENABLED:
        return problem_json_response(
            {"type": "not-found", "title": "Not found", "status": 404, "detail": "Simulation is disabled."}
        )
    payload = json_object(raw_json_body(request))
    result = simulated_deposit(
        user_id=payload.get("user_id"),
        amount_u=payload.get("amount_u"),
        currency=payload.get("currency", settings.ROUND_CURRENCY),
        reference=payload.get("reference"),
    )
    return JsonResponse(
        {
            "user_id": str(result.user.public_id),
            "currency": result.currency,
            "amount_u": result.amount_u,
            "reference": result.reference or None,
            "status": result.status,
            "duplicate": result.duplicate,
            "balance_u": result.balance_u,
        }
    )
