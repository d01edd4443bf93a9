"""Helpers for deposit and webhook tests: signed deliveries, pending deposits, what must not change."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings

from ledger.models import Account, Journal
from webhooks.models import Deposit, WebhookEvent
from webhooks.stub import (
    SignedWebhook,
    adyen_notification,
    adyen_notification_item,
    adyen_notification_request,
    custody_request,
    stripe_event,
    stripe_request,
)

STRIPE_URL = "/webhooks/stripe"
ADYEN_URL = "/webhooks/adyen"
CUSTODY_URL = "/webhooks/deposits"


def available(user: Any, currency: str) -> int:
    """The player's stored available balance in a currency (0 when there is no account yet)."""
    row = Account.objects.filter(owner=user, currency=currency, kind=Account.Kind.USER_AVAILABLE).first()
    return row.balance_u if row else 0


def snapshot() -> dict[str, Any]:
    """Everything a refused delivery must leave unchanged."""
    return {
        "journals": Journal.objects.count(),
        "balances": sorted(Account.objects.values_list("name", "currency", "balance_u")),
        "events": sorted(WebhookEvent.objects.values_list("id", "status", "attempts")),
        "deposits": sorted(Deposit.objects.values_list("id", "status")),
    }


def pending_deposit(
    user: Any, *, provider: str = "stripe", amount_u: int = 2500, currency: str = "USD", psp_id: str | None = None
) -> Deposit:
    """A deposit as `POST /v1/deposits` leaves it: pending, with the PSP's id."""
    if psp_id is None:
        psp_id = f"pi_{uuid.uuid4().hex[:24]}" if provider == "stripe" else f"CS{uuid.uuid4().hex[:14].upper()}"
    return Deposit.objects.create(
        provider=provider, reference=str(uuid.uuid4()), user=user, amount_u=amount_u, currency=currency, psp_id=psp_id
    )


def payment_intent(deposit: Deposit, **changes: Any) -> dict[str, Any]:
    """The PaymentIntent of a deposit, as Stripe sends it once paid."""
    return {
        "id": deposit.psp_id,
        "object": "payment_intent",
        "amount": deposit.amount_u,
        "amount_received": deposit.amount_u,
        "currency": deposit.currency.lower(),
        "status": "succeeded",
        "metadata": {"deposit_reference": deposit.reference},
        **changes,
    }


def refund_charge(deposit: Deposit, *, amount_refunded: int, charge_id: str = "ch_1") -> dict[str, Any]:
    """The charge of a deposit's payment after `amount_refunded` (cumulative) was refunded."""
    return {
        "id": charge_id,
        "object": "charge",
        "amount": deposit.amount_u,
        "amount_refunded": amount_refunded,
        "currency": deposit.currency.lower(),
        "payment_intent": deposit.psp_id,
        "refunded": True,
        "metadata": {},
    }


def stripe_delivery(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    timestamp: int | None = None,
    secret: str | None = None,
) -> tuple[dict[str, Any], SignedWebhook]:
    """A Stripe event and its delivery, signed with the SDK's generate_signature_header."""
    event = stripe_event(event_type, obj, event_id)
    return event, stripe_request(event, secret or settings.STRIPE_WEBHOOK_SECRET, timestamp)


def adyen_item(
    deposit: Deposit | None = None,
    *,
    event_code: str = "AUTHORISATION",
    success: bool = True,
    psp_reference: str | None = None,
    value: int | None = None,
    currency: str | None = None,
    merchant_reference: str | None = None,
    original_reference: str = "",
    hmac_key: str | None = None,
) -> dict[str, Any]:
    """A signed Adyen NotificationRequestItem about a deposit."""
    return adyen_notification_item(
        hmac_key or settings.ADYEN_HMAC_KEY,
        event_code=event_code,
        psp_reference=psp_reference or uuid.uuid4().hex[:16].upper(),
        merchant_reference=(
            merchant_reference if merchant_reference is not None else (deposit.reference if deposit else "x")
        ),
        value=value if value is not None else (deposit.amount_u if deposit else 100),
        currency=currency or (deposit.currency if deposit else "EUR"),
        success=success,
        original_reference=original_reference,
    )


def adyen_delivery(*items: dict[str, Any]) -> SignedWebhook:
    return adyen_notification_request(adyen_notification(list(items)))


def custody_payload(
    user: Any, *, amount_u: int = 5_000_000, currency: str = "USDC", reference: str | None = None
) -> dict[str, Any]:
    return {
        "reference": reference or f"0x{uuid.uuid4().hex}",
        "user_id": str(user.public_id),
        "amount_u": amount_u,
        "currency": currency,
    }


def custody_delivery(payload: dict[str, Any], key: str | None = None) -> SignedWebhook:
    return custody_request(payload, key or settings.CUSTODY_WEBHOOK_KEY)
