"""Signature checks of the deposit webhooks on the raw body, each the provider's own way.

The provider-neutral pieces (body limit, JSON object, Stripe-Signature, hex HMAC-SHA256) are the
kernel's `ops.inbound`, shared with the payout webhooks; this module adds what only deposits need:

* Stripe: `ops.inbound.stripe_signature_verify`, then an event must be a JSON object with an id and a type
  (a signed body that is not a JSON object is refused, not handed to the SDK).
* Adyen standard notifications: `Adyen.util.is_valid_hmac_notification` on EVERY item (the SDK checks one).
* Custody: `X-Webhook-Signature` = hex HMAC-SHA256 of the raw body with CUSTODY_WEBHOOK_KEY.

Each returns the parsed payload or raises `InvalidSignature` / `MalformedPayload`; nothing here
touches the database.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ops import inbound

from .errors import InvalidSignature, MalformedPayload, PayloadTooLarge, UnsupportedMediaType, WebhookNotConfigured

# The deposit webhooks' problem types (status codes and bodies the PSPs and the tests know).
REFUSALS = inbound.Refusals(
    too_large=PayloadTooLarge,
    malformed=MalformedPayload,
    bad_signature=InvalidSignature,
    not_configured=WebhookNotConfigured,
    media_type=UnsupportedMediaType,
)


def json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object from the raw body, or raise MalformedPayload."""
    return inbound.json_object(body, REFUSALS)


def stripe_event_verify(*, body: bytes, signature_header: str) -> dict[str, Any]:
    """Verify a Stripe delivery and return the event as plain JSON."""
    inbound.stripe_signature_verify(body=body, header=signature_header, refusals=REFUSALS)
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
    inbound.hmac_sha256_hex_verify(
        body=body, signature=signature, key=key, header="X-Webhook-Signature", refusals=REFUSALS
    )
