"""Starting a payment with a PSP through its official SDK: Stripe PaymentIntents, Adyen Checkout sessions.

Each call uses our deposit reference as the PSP's idempotency key, so a retry never creates a second
payment object. These functions do network I/O: never call them inside a transaction that holds locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ops import psp

from .models import Deposit, Provider

if TYPE_CHECKING:
    from stripe.params import PaymentIntentCreateParams

# PSP amounts are in the currency's minor unit; only currencies whose minor unit matches ours are offered.
PSP_CURRENCIES: dict[str, frozenset[str]] = {
    Provider.STRIPE: frozenset({"USD", "EUR"}),
    Provider.ADYEN: frozenset({"USD", "EUR"}),
}


class ProviderCallFailed(Exception):
    """The PSP refused the request or could not be reached; `detail` says which."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail[:500]


@dataclass(frozen=True)
class StartedPayment:
    """What the PSP gave back: its object's id and what the client needs to pay."""

    psp_id: str
    client_data: dict[str, Any] = field(default_factory=dict)


def _timeout_s() -> float:
    return float(settings.DEPOSIT_PROVIDER_TIMEOUT_S)


def adyen_checkout_api() -> Any:
    """Return the Adyen Checkout payments API on the configured platform (ADYEN_API_BASE when set)."""
    return psp.point_at_base(psp.adyen_sdk(timeout_s=_timeout_s()).checkout.payments_api)


def stripe_payment_intent_create(*, deposit: Deposit) -> StartedPayment:
    """Create a PaymentIntent carrying our reference and the flow id in metadata; idempotency key = our reference."""
    import stripe

    params: PaymentIntentCreateParams = {
        "amount": deposit.amount_u,
        "currency": deposit.currency.lower(),
        "metadata": {
            "deposit_reference": deposit.reference,
            "user": str(deposit.user.public_id),
            "flow_id": deposit.flow_id,
        },
        "automatic_payment_methods": {"enabled": True},
        "description": f"Deposit {deposit.reference}",
    }
    try:
        intent = psp.stripe_client(timeout_s=_timeout_s()).v1.payment_intents.create(
            params=params, options={"idempotency_key": deposit.reference}
        )
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None)
        raise ProviderCallFailed(f"Stripe: {type(exc).__name__} (HTTP {status}): {exc.user_message or exc}") from exc
    return StartedPayment(psp_id=str(intent.id), client_data={"client_secret": str(intent.client_secret)})


def adyen_session_create(*, deposit: Deposit, return_url: str = "") -> StartedPayment:
    """Create a Checkout session with reference = our reference and the flow id in its metadata;
    idempotency key = our reference."""
    import requests
    from Adyen.exceptions import AdyenError

    request = {
        "amount": {"value": deposit.amount_u, "currency": deposit.currency},
        "reference": deposit.reference,
        "merchantAccount": settings.ADYEN_MERCHANT_ACCOUNT,
        "returnUrl": return_url or settings.DEPOSIT_RETURN_URL,
        "shopperReference": str(deposit.user.public_id),
        "metadata": {"flow_id": deposit.flow_id},
    }
    try:
        api = adyen_checkout_api()
    except ImproperlyConfigured as exc:  # e.g. the test platform in production: nothing was sent
        raise ProviderCallFailed(f"Adyen: configuration: {exc}") from exc
    try:
        result = api.sessions(request, idempotency_key=deposit.reference)
    except AdyenError as exc:
        raise ProviderCallFailed(f"Adyen: {type(exc).__name__} (HTTP {getattr(exc, 'status_code', None)})") from exc
    except requests.RequestException as exc:
        raise ProviderCallFailed(f"Adyen: {type(exc).__name__}: {exc}") from exc
    session = result.message or {}
    if not session.get("id") or not session.get("sessionData"):
        raise ProviderCallFailed("Adyen: the session response has no id or sessionData.")
    return StartedPayment(
        psp_id=str(session["id"]),
        client_data={"session_id": str(session["id"]), "session_data": str(session["sessionData"])},
    )


def payment_start(*, deposit: Deposit, return_url: str = "") -> StartedPayment:
    """Start the payment of a pending deposit with its provider."""
    if deposit.provider == Provider.STRIPE:
        return stripe_payment_intent_create(deposit=deposit)
    if deposit.provider == Provider.ADYEN:
        return adyen_session_create(deposit=deposit, return_url=return_url)
    raise ProviderCallFailed(f"Provider {deposit.provider!r} has no payment start.")
