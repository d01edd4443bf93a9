"""Signature checks on the raw webhook body, each the provider's own way.

* Stripe: `stripe.WebhookSignature.verify_header(payload, Stripe-Signature, secret, tolerance=300)`
  (the check `stripe.Webhook.construct_event` makes), then our own parsing: a signed body that is
  not a JSON object is refused, not handed to the SDK.
* Adyen: `Adyen.util.is_valid_hmac_notification` on EVERY notification item (the SDK checks one).
* Custody: `X-Webhook-Signature` = hex HMAC-SHA256 of the raw body with the shared key,
  compared in constant time.

Each returns the parsed payload or raises `InvalidSignature` / `MalformedPayload`; nothing here
touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings

from .errors import InvalidSignature, MalformedPayload, WebhookNotConfigured

STRIPE_TOLERANCE_S = 300


def json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object from the raw body, or raise MalformedPayload."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise MalformedPayload("The body is not a JSON object.")
    return payload


def stripe_event_verify(*, body: bytes, signature_header: str) -> dict[str, Any]:
    """Verify a Stripe delivery and return the event as plain JSON."""
    import stripe

    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookNotConfigured("STRIPE_WEBHOOK_SECRET is not set; cannot verify Stripe webhooks.")
    if not signature_header:
        raise InvalidSignature("The Stripe-Signature header is missing.")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("The body is not UTF-8.") from None
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance=STRIPE_TOLERANCE_S)
    except stripe.SignatureVerificationError:
        raise InvalidSignature(
            f"The Stripe-Signature does not match, or its timestamp is older than {STRIPE_TOLERANCE_S} s."
        ) from None
    event = json_object(body)
    if not isinstance(event.get("id"), str) or not event["id"] or not isinstance(event.get("type"), str):
        raise MalformedPayload("A Stripe event needs an id and a type.")
    return event


def adyen_item_is_valid(item: Any, hmac_key: str) -> bool:
    """Check one NotificationRequestItem's hmacSignature with the Adyen SDK."""
    from Adyen.util import is_valid_hmac_notification

    if not isinstance(item, dict) or not isinstance(item.get("additionalData"), dict):
        return False
    signature = item["additionalData"].get("hmacSignature")
    if not isinstance(signature, str) or not signature:
        return False
    try:
        return bool(is_valid_hmac_notification(item, hmac_key))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def adyen_items_verify(*, body: bytes) -> list[dict[str, Any]]:
    """Verify every item of an Adyen notification; one bad item refuses the whole delivery."""
    hmac_key = settings.ADYEN_HMAC_KEY
    if not hmac_key:
        raise WebhookNotConfigured("ADYEN_HMAC_KEY is not set; cannot verify Adyen webhooks.")
    payload = json_object(body)
    wrappers = payload.get("notificationItems")
    if not isinstance(wrappers, list) or not wrappers:
        raise MalformedPayload("An Adyen notification needs a non-empty notificationItems list.")
    items: list[dict[str, Any]] = []
    for index, wrapper in enumerate(wrappers):
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise MalformedPayload(f"notificationItems[{index}] has no NotificationRequestItem.")
        if not adyen_item_is_valid(item, hmac_key):
            raise InvalidSignature(f"notificationItems[{index}] has a missing or wrong hmacSignature.")
        items.append(item)
    return items


def custody_signature_verify(*, body: bytes, signature: str, key: str | None = None) -> None:
    """Check X-Webhook-Signature (hex HMAC-SHA256 of the raw body) in constant time."""
    key = settings.CUSTODY_WEBHOOK_KEY if key is None else key
    if not key:
        raise WebhookNotConfigured("CUSTODY_WEBHOOK_KEY is not set; cannot verify deposit webhooks.")
    if not signature:
        raise InvalidSignature("The X-Webhook-Signature header is missing.")
    expected = hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise InvalidSignature("X-Webhook-Signature does not match the body.")
