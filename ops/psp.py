"""How the PSP SDKs are configured: Adyen's platform (test or live, with the live endpoint prefix)
and where the Stripe and Adyen clients point. The one place a Stripe or Adyen client is built:
deposits (`webhooks.providers`) and payouts (`payouts.providers`) take theirs from here, each with
its own timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    import stripe

ADYEN_ENVIRONMENTS = ("test", "live")


def adyen_platform() -> tuple[str, str | None]:
    """Return (platform, live endpoint prefix) for the Adyen SDK, or refuse an unsafe combination.

    Production never talks to Adyen's test platform, and "live" without the account's endpoint
    prefix cannot reach the live Checkout API.
    """
    environment = str(settings.ADYEN_ENVIRONMENT)
    prefix = str(settings.ADYEN_LIVE_ENDPOINT_PREFIX) or None
    if environment not in ADYEN_ENVIRONMENTS:
        raise ImproperlyConfigured(f"ADYEN_ENVIRONMENT must be 'test' or 'live', not {environment!r}.")
    if environment == "test" and settings.ENVIRONMENT == "production":
        raise ImproperlyConfigured("Production refuses Adyen's test platform: set ADYEN_ENVIRONMENT=live.")
    if environment == "live" and not prefix:
        raise ImproperlyConfigured("ADYEN_ENVIRONMENT=live needs ADYEN_LIVE_ENDPOINT_PREFIX.")
    return environment, prefix if environment == "live" else None


def adyen_sdk(*, timeout_s: float) -> Any:
    """Return an Adyen SDK object on the configured platform (its API objects honour ADYEN_API_BASE)."""
    import Adyen

    platform, prefix = adyen_platform()
    return Adyen.Adyen(
        xapikey=settings.ADYEN_API_KEY, platform=platform, live_endpoint_prefix=prefix, http_timeout=timeout_s
    )


def point_at_base(api: Any) -> Any:
    """Point one Adyen API object at ADYEN_API_BASE when set (the local stub), and return it."""
    base = str(settings.ADYEN_API_BASE)
    if base:
        api.baseUrl = base.rstrip("/")
    return api


def stripe_client(*, timeout_s: float) -> stripe.StripeClient:
    """Return a StripeClient with no SDK retries, pointed at STRIPE_API_BASE when set (the stub)."""
    import stripe

    kwargs: dict[str, Any] = {"http_client": stripe.RequestsClient(timeout=timeout_s), "max_network_retries": 0}
    base = str(settings.STRIPE_API_BASE)
    if base:
        kwargs["base_addresses"] = {"api": base.rstrip("/")}
    return stripe.StripeClient(settings.STRIPE_API_KEY, **kwargs)
