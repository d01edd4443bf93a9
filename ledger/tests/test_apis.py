"""The player's wallet and statement over the API."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.tests.factories import FundedPlayerFactory
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db


def test_wallet_shows_available_held_and_in_open_bets(fund: Any, api_client_for: Any) -> None:
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    fund(player, 1_250, currency="USD")
    response = api_client_for(player).get("/v1/wallet")
    assert response.status_code == 200
    assert response.json()["balances"] == [
        {"currency": "USD", "exponent": 2, "available_u": 1_250, "held_u": 0, "in_open_bets_u": 0},
        {"currency": "USDC", "exponent": 6, "available_u": 5_000_000, "held_u": 0, "in_open_bets_u": 0},
    ]


def test_statement_is_own_entries_newest_first_paginated(make_player: Any, fund: Any, api_client_for: Any) -> None:
    alice = make_player()
    for amount in (10, 20, 30):
        fund(alice, amount)
    FundedPlayerFactory.create(balance_u=99)  # bob: his entries are not in alice's statement
    services.transfer(
        source=services.user_account(user=alice, currency="USDC"),
        destination=services.house_account(currency="USDC"),
        amount_u=5,
        type="fee",
        reference="fee-1",
        actor=SystemActor("test"),
    )
    page = api_client_for(alice).get("/v1/ledger/entries?limit=2&offset=0").json()
    assert page["count"] == 4
    assert [(e["amount_u"], e["ref_type"]) for e in page["results"]] == [(-5, "fee"), (30, "deposit")]
    assert page["next"] is not None
    rest = api_client_for(alice).get("/v1/ledger/entries?limit=2&offset=2").json()
    assert [e["amount_u"] for e in rest["results"]] == [20, 10]
    assert all(e["account"] == "user_available" for e in page["results"] + rest["results"])


def test_statement_unknown_currency_is_a_problem(player: Any, api_client_for: Any) -> None:
    response = api_client_for(player).get("/v1/ledger/entries?currency=DOGE")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "ledger/unknown-currency"


def test_openapi_schema_is_served(client: Any) -> None:
    response = client.get("/v1/schema")
    assert response.status_code == 200
    assert b"/v1/wallet" in response.content


def test_api_docs_page_is_self_contained(client: Any) -> None:
    response = client.get("/v1/docs")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"cdn.jsdelivr" not in response.content and b"unpkg.com" not in response.content
