"""`GET /v1/chain/deposit-address` refuses operators and answers 404 where the rail is not offered."""

from __future__ import annotations

from typing import Any

import pytest

from payouts.chain.models import DepositAddress

pytestmark = pytest.mark.django_db


def test_operators_get_no_deposit_address(make_staff: Any, api_client_for: Any) -> None:
    response = api_client_for(make_staff(role="finance")).get("/v1/chain/deposit-address")
    assert (response.status_code, response.json()["type"]) == (403, "accounts/not-a-player")
    assert not DepositAddress.objects.exists()


def test_an_unconfigured_rail_is_not_offered(player: Any, api_client_for: Any, settings: Any) -> None:
    settings.CHAIN_RPC_URL = ""
    settings.CHAIN_DEPOSIT_XPUB = ""
    response = api_client_for(player).get("/v1/chain/deposit-address")
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "chain/not-offered"
    assert not DepositAddress.objects.exists()
