"""The PSP SDKs' platform comes from settings: Adyen live endpoints when configured live, and
production refuses Adyen's test platform."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from payouts.providers import AdyenTransfersProvider
from webhooks.providers import adyen_checkout_api

PREFIX = "1797a841fbb37ca7-AdyenDemo"


def _url(api: Any, path: str) -> str:
    """The URL the SDK would call for this API object (its own resolution, no network)."""
    return api.client._determine_api_url(api.client.platform, api.baseUrl + path)


def test_adyen_clients_point_at_live_endpoints_when_configured_live(settings: Any) -> None:
    settings.ADYEN_ENVIRONMENT, settings.ADYEN_LIVE_ENDPOINT_PREFIX, settings.ADYEN_API_BASE = "live", PREFIX, ""
    checkout = adyen_checkout_api()
    assert checkout.client.platform == "live"
    assert _url(checkout, "/sessions").startswith(f"https://{PREFIX}-checkout-live.adyenpayments.com/checkout/")
    transfers = AdyenTransfersProvider()._api()
    assert _url(transfers, "/transfers") == "https://balanceplatform-api-live.adyen.com/btl/v4/transfers"


def test_adyen_clients_use_the_test_platform_outside_production(settings: Any) -> None:
    settings.ADYEN_ENVIRONMENT, settings.ADYEN_API_BASE = "test", ""
    assert _url(adyen_checkout_api(), "/sessions").startswith("https://checkout-test.adyen.com/")
    assert _url(AdyenTransfersProvider()._api(), "/transfers").startswith("https://balanceplatform-api-test.adyen.com/")


def test_production_refuses_the_adyen_test_platform(settings: Any) -> None:
    settings.ENVIRONMENT, settings.ADYEN_ENVIRONMENT = "production", "test"
    with pytest.raises(ImproperlyConfigured, match="Production refuses Adyen's test platform"):
        adyen_checkout_api()
    with pytest.raises(ImproperlyConfigured, match="Production refuses Adyen's test platform"):
        AdyenTransfersProvider()._api()


def test_a_payout_on_a_refused_platform_is_a_retryable_error_and_sends_nothing(settings: Any) -> None:
    from payouts.models import Withdrawal
    from payouts.providers import Outcome

    settings.ENVIRONMENT, settings.ADYEN_ENVIRONMENT, settings.ADYEN_API_BASE = (
        "production",
        "test",
        "http://127.0.0.1:9",
    )
    withdrawal = Withdrawal(
        pk=1,
        amount_u=1_000,
        currency="USD",
        provider="adyen",
        destination={"transfer_instrument_id": "SE322KH223222F5GXZFNM3BGP"},
    )
    result = AdyenTransfersProvider().submit(withdrawal=withdrawal, idempotency_key="k-1")
    assert result.outcome == Outcome.ERROR and result.retryable
    assert "Production refuses Adyen's test platform" in result.detail


def test_live_without_the_endpoint_prefix_is_refused(settings: Any) -> None:
    settings.ADYEN_ENVIRONMENT, settings.ADYEN_LIVE_ENDPOINT_PREFIX = "live", ""
    with pytest.raises(ImproperlyConfigured, match="needs ADYEN_LIVE_ENDPOINT_PREFIX"):
        adyen_checkout_api()


def test_a_deposit_on_a_refused_platform_is_a_provider_failure(settings: Any, player: Any) -> None:
    from webhooks.providers import ProviderCallFailed, adyen_session_create
    from webhooks.tests.helpers import pending_deposit

    settings.ENVIRONMENT, settings.ADYEN_ENVIRONMENT, settings.ADYEN_API_BASE = (
        "production",
        "test",
        "http://127.0.0.1:9",
    )
    with pytest.raises(ProviderCallFailed, match="configuration: Production refuses Adyen's test platform"):
        adyen_session_create(deposit=pending_deposit(player, provider="adyen"))
