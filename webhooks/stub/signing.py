"""Pure builders for correctly signed PSP webhooks: bodies, signatures and headers.

Nothing here touches the network; :mod:`webhooks.stub.delivery` POSTs the results.
Each ``*_request`` function returns a :class:`SignedWebhook` (raw body bytes plus
headers) that can be sent with ``requests`` or handed to a test client as is.

* Stripe: ``Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>``,
  computed by the stripe SDK's own ``stripe.WebhookSignature.generate_signature_header``.
* Adyen standard notifications: each item carries ``additionalData.hmacSignature``,
  base64 HMAC-SHA256 (hex-decoded key) over ``pspReference:originalReference:
  merchantAccountCode:merchantReference:value:currency:eventCode:success``, computed
  by the Adyen SDK's ``Adyen.util.generate_notification_sig``.
* Adyen Transfers (Balance Platform) webhooks: header ``HmacSignature`` is base64
  HMAC-SHA256 of the raw body, computed by ``Adyen.util.generate_payload_sig``.
* Custody deposits: header ``X-Webhook-Signature`` is hex HMAC-SHA256 of the raw body.
"""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from Adyen import util as adyen_util

from .ids import stripe_id

JSON = dict[str, Any]

TRANSFER_EVENT = "balancePlatform.transfer.updated"
_TRANSFER_REASONS = {"failed": "refusedByCounterpartyBank", "refused": "notEnoughBalance", "returned": "unknown"}


@dataclass(frozen=True)
class SignedWebhook:
    """A webhook ready to POST: the exact body bytes and the headers to send."""

    body: bytes
    headers: dict[str, str]


def _json_bytes(payload: JSON) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


# Stripe ---------------------------------------------------------------------


def stripe_event(
    event_type: str, obj: JSON, event_id: str | None = None, created: int | None = None, account: str | None = None
) -> JSON:
    """A Stripe Event (snapshot payload) of ``event_type`` wrapping ``obj``; with ``account``, a Connect event
    (Stripe adds the connected account the object lives on as the event's ``account``)."""
    event: JSON = {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": str(stripe.api_version),
        "created": created if created is not None else int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    if account:
        event["account"] = account
    return event


def stripe_signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload``, as Stripe computes it."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)


def stripe_request(event: JSON, secret: str, timestamp: int | None = None) -> SignedWebhook:
    """``event`` serialized and signed the way Stripe delivers it."""
    payload = json.dumps(event, indent=2)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": stripe_signature_header(payload, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return SignedWebhook(payload.encode("utf-8"), headers)


# Adyen standard notifications -------------------------------------------------


def adyen_item_signature(item: JSON, hmac_key: str) -> str:
    """The ``hmacSignature`` of a NotificationRequestItem (``additionalData`` is ignored)."""
    unsigned = {name: value for name, value in item.items() if name != "additionalData"}
    return adyen_util.generate_notification_sig(unsigned, hmac_key).decode("ascii")


def adyen_notification_item(
    hmac_key: str,
    *,
    event_code: str,
    psp_reference: str,
    merchant_reference: str,
    value: int,
    currency: str,
    success: bool = True,
    merchant_account: str = "TestMerchant",
    original_reference: str = "",
    payment_method: str = "visa",
    reason: str = "",
    event_date: str | None = None,
    additional_data: dict[str, str] | None = None,
) -> JSON:
    """A signed NotificationRequestItem (AUTHORISATION, REFUND, CHARGEBACK, ...)."""
    item: JSON = {
        "amount": {"currency": currency, "value": value},
        "eventCode": event_code,
        "eventDate": event_date or datetime.now(UTC).isoformat(timespec="seconds"),
        "merchantAccountCode": merchant_account,
        "merchantReference": merchant_reference,
        "paymentMethod": payment_method,
        "pspReference": psp_reference,
        "reason": reason,
        "success": "true" if success else "false",
    }
    if original_reference:
        item["originalReference"] = original_reference
    signature = adyen_item_signature(item, hmac_key)
    item["additionalData"] = {**(additional_data or {}), "hmacSignature": signature}
    return item


def adyen_notification(items: list[JSON], live: bool = False) -> JSON:
    """The notification body Adyen POSTs, wrapping already signed ``items``."""
    return {
        "live": "true" if live else "false",
        "notificationItems": [{"NotificationRequestItem": item} for item in items],
    }


def adyen_notification_request(body: JSON, basic_auth: tuple[str, str] | None = None) -> SignedWebhook:
    """A standard notification; Adyen authenticates it with optional HTTP basic auth."""
    headers = {"Content-Type": "application/json"}
    if basic_auth is not None:
        credentials = base64.b64encode(":".join(basic_auth).encode("utf-8")).decode("ascii")
        headers["Authorization"] = f"Basic {credentials}"
    return SignedWebhook(_json_bytes(body), headers)


# Adyen Transfers webhooks ---------------------------------------------------


def adyen_payload_signature(payload: bytes, hmac_key_hex: str) -> str:
    """The ``HmacSignature`` header value for a Balance Platform webhook body."""
    return adyen_util.generate_payload_sig(payload, hmac_key_hex).decode("ascii")


def adyen_transfer_webhook(
    transfer: JSON, status: str, reason: str | None = None, event_type: str = TRANSFER_EVENT
) -> JSON:
    """A ``balancePlatform.transfer.updated`` body moving ``transfer`` to ``status``.

    ``transfer`` needs ``id``, ``reference`` and ``amount`` (a transfer the stub
    returned works as is); ``status`` is e.g. ``booked``, ``failed`` or ``returned``.
    """
    data = {
        "balancePlatform": "TestBalancePlatform",
        "category": "bank",
        "direction": "outgoing",
        "type": "bankTransfer",
        **transfer,
        "reason": reason or _TRANSFER_REASONS.get(status, "approved"),
        "status": status,
    }
    missing = [name for name in ("id", "reference", "amount") if name not in data]
    if missing:
        raise ValueError(f"transfer is missing {', '.join(missing)}")
    return {
        "data": data,
        "environment": "test",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "type": event_type,
    }


def adyen_transfer_request(webhook: JSON, hmac_key_hex: str) -> SignedWebhook:
    """A Transfers webhook body with its ``HmacSignature`` header."""
    body = _json_bytes(webhook)
    headers = {"Content-Type": "application/json", "HmacSignature": adyen_payload_signature(body, hmac_key_hex)}
    return SignedWebhook(body, headers)


# Custody deposits -----------------------------------------------------------


def custody_signature(body: bytes, key: str) -> str:
    """Hex HMAC-SHA256 of the raw body under the shared ``key``."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def custody_request(payload: JSON, key: str) -> SignedWebhook:
    """A custody deposit webhook with its ``X-Webhook-Signature`` header."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    headers = {"Content-Type": "application/json", "X-Webhook-Signature": custody_signature(body, key)}
    return SignedWebhook(body, headers)
