"""Bad inputs to the rounds API and admin: a 4xx, never a 500, and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from ledger.models import Account, Journal
from rounds.models import Bet, Round

pytestmark = pytest.mark.django_db


def _state() -> dict[str, Any]:
    return {
        "journals": Journal.objects.count(),
        "balances": sorted(Account.objects.values_list("name", "balance_u")),
        "bets": Bet.objects.count(),
        "rounds": sorted(Round.objects.values_list("code", "status", "up_pool_u", "down_pool_u")),
    }


@pytest.mark.parametrize("stake", [9007199254740993, 2**63, -(2**63) - 1, 10**30])
def test_a_stake_beyond_any_balance_or_integer_range_is_a_400(
    open_round: Callable[..., Any],
    player: Any,
    fund: Callable[..., Any],
    api_client_for: Callable[..., Any],
    stake: int,
) -> None:
    round_obj = open_round("20250908")
    fund(player, 5_000_000)
    before = _state()
    response = api_client_for(player).post(
        f"/v1/rounds/{round_obj.code}/bets",
        {"side": "UP", "stake_u": stake},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"big-{stake}",
    )
    assert 400 <= response.status_code < 500, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert _state() == before


def test_a_bet_proof_for_an_id_that_is_not_a_uuid_is_a_404(player: Any, api_client_for: Callable[..., Any]) -> None:
    response = api_client_for(player).get("/v1/bets/not-a-uuid/proof")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json" and response.json()["type"] == "rounds/bet-not-found"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/rounds/round/999999/enter-price/",
        "/admin/rounds/round/999999/force/",
        "/admin/rounds/round/999999/void/",
        "/admin/ops/proposal/999999/decide/approve/",
        "/admin/ops/proposal/999999/decide/reject/",
    ],
)
def test_admin_views_with_a_missing_round_or_request_are_404(make_staff: Callable[..., Any], path: str) -> None:
    client = Client()
    client.force_login(make_staff(role="admin"))
    before = _state()
    assert client.get(path).status_code == 404
    assert client.post(path, {"reason": "x", "price": "1", "evidence": "x"}).status_code == 404
    assert _state() == before
