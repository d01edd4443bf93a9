"""Bad inputs to the withdrawal API: a 400 problem+json, never a 500, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import snapshot

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "destination",
    [
        {"iban": "DE89\u00003704"},
        {"note\u0000": "x"},
        {"nested": {"deep": ["ok", "bad\u0000"]}},
    ],
)
def test_a_nul_character_in_the_destination_is_a_400(
    funded_player: Any, api_client_for: Any, destination: dict[str, Any]
) -> None:
    before = snapshot()
    response = api_client_for(funded_player).post(
        "/v1/withdrawals",
        {"amount_u": 1_000_000, "currency": "USDC", "provider": "adyen", "destination": destination},
        format="json",
        HTTP_IDEMPOTENCY_KEY="nul-1",
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert snapshot() == before
