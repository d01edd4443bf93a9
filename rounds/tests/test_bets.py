"""Placing bets: the lock instant, minimum stake, one bet per round, pause switch, the API contract."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ledger.models import Journal
from ledger.selectors import user_wallet
from ledger.services import user_account
from ledger.tests.factories import FundedPlayerFactory
from ops.actors import SystemActor
from ops.models import Switch
from rounds import errors
from rounds.betting import bet_place
from rounds.models import Bet, Round
from rounds.pools import pools_show
from rounds.selectors import user_open_stakes
from rounds.tests.factories import pool_held

pytestmark = pytest.mark.django_db


def pool_balance(round_obj: Round) -> int:
    return pool_held(round_obj)  # the pool account and, before lock, the stripes the bets credit


def available(player: Any) -> int:
    return user_account(user=player, currency="USDC").balance_u


def test_bet_moves_the_stake_into_the_pool(
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    bet = bet_place(user=player, code=round_obj.code, side="UP", stake_u=2_000_000)
    round_obj.refresh_from_db()
    pools_show(round_obj=round_obj)  # OPEN: its pool figures from its bets
    assert (available(player), pool_balance(round_obj)) == (3_000_000, 2_000_000)
    assert (round_obj.up_pool_u, round_obj.up_bets, round_obj.down_pool_u) == (2_000_000, 1, 0)
    assert Journal.objects.get(reference=f"bet:{bet.bet_id}").type == "bet"
    assert user_open_stakes(user=player) == {"USDC": 2_000_000}
    # The wallet shows it through the ledger's registry (the ledger does not import rounds).
    [wallet] = user_wallet(user=player)
    assert (wallet["available_u"], wallet["in_open_bets_u"]) == (3_000_000, 2_000_000)
    assert_ledger_ok()


def test_lock_minus_one_ms_accepted_and_at_lock_refused(
    open_round: Callable[..., Any],
    clock: Any,
) -> None:
    round_obj = open_round("20250908")
    early, late = FundedPlayerFactory.create_batch(2, balance_u=1_000_000)
    clock.set(round_obj.lock_at - timedelta(milliseconds=1))
    bet = bet_place(user=early, code=round_obj.code, side="DOWN", stake_u=1_000_000)
    assert bet.placed_at == round_obj.lock_at - timedelta(milliseconds=1)

    clock.set(round_obj.lock_at)
    with pytest.raises(errors.RoundLocked):
        bet_place(user=late, code=round_obj.code, side="UP", stake_u=1_000_000)
    round_obj.refresh_from_db()
    pools_show(round_obj=round_obj)  # OPEN: its pool figures from its bets
    assert available(late) == 1_000_000 and pool_balance(round_obj) == 1_000_000
    assert (round_obj.up_bets, round_obj.down_bets) == (0, 1)
    assert not Bet.objects.filter(player=late).exists()


def test_bet_on_a_locked_round_is_refused_even_before_lock_time(
    open_round: Callable[..., Any],
) -> None:
    from rounds.services import round_lock

    round_obj = open_round("20250908")
    round_lock(code=round_obj.code, acting_user=SystemActor("cli:test"), reason="emergency")
    player = FundedPlayerFactory.create(balance_u=1_000_000)
    with pytest.raises(errors.RoundLocked):
        bet_place(user=player, code=round_obj.code, side="UP", stake_u=1_000_000)
    assert available(player) == 1_000_000 and not Bet.objects.exists()


def test_refusals_change_nothing(
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=3_000_000)
    bet_place(user=player, code=round_obj.code, side="UP", stake_u=1_000_000)
    cases: list[tuple[type[errors.RoundError], dict[str, Any]]] = [
        (errors.AlreadyBet, {"side": "UP", "stake_u": 1_000_000}),
        (errors.AlreadyBet, {"side": "DOWN", "stake_u": 1_000_000}),
        (errors.StakeTooSmall, {"side": "UP", "stake_u": 999_999}),
        (errors.InvalidBet, {"side": "SIDEWAYS", "stake_u": 1_000_000}),
        (errors.InvalidBet, {"side": "UP", "stake_u": 1.5}),
        (errors.InvalidBet, {"side": "UP", "stake_u": True}),
        (errors.RoundNotFound, {"side": "UP", "stake_u": 1_000_000, "code": "20250909"}),
    ]
    for error, kwargs in cases:
        kwargs.setdefault("code", round_obj.code)
        with pytest.raises(error):
            bet_place(user=player, **kwargs)
        assert available(player) == 2_000_000 and pool_balance(round_obj) == 1_000_000
        assert Bet.objects.count() == 1
    assert_ledger_ok()


def test_insufficient_funds_leaves_no_bet(
    open_round: Callable[..., Any],
) -> None:
    from ledger.errors import InsufficientFunds

    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=1_500_000)
    with pytest.raises(InsufficientFunds):
        bet_place(user=player, code=round_obj.code, side="UP", stake_u=2_000_000)
    round_obj.refresh_from_db()
    pools_show(round_obj=round_obj)  # OPEN: its pool figures from its bets
    assert (available(player), pool_balance(round_obj), round_obj.up_pool_u, Bet.objects.count()) == (
        1_500_000,
        0,
        0,
        0,
    )


def test_api_places_a_bet_with_idempotency(
    open_round: Callable[..., Any],
    api_client_for: Callable[..., Any],
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    client = api_client_for(player)
    url = f"/v1/rounds/{round_obj.code}/bets"
    body = {"side": "UP", "stake_u": 2_000_000}

    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = client.post(url, {"side": "DOWN", "stake_u": 2_000_000}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    missing = client.post(url, body, format="json")

    assert first.status_code == 201, first.content
    assert first.json()["side"] == "UP" and first.json()["stake_u"] == 2_000_000
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["bet_id"] == first.json()["bet_id"]
    assert other.status_code == 422 and missing.status_code == 400
    assert Bet.objects.count() == 1 and available(player) == 3_000_000


def test_api_problem_documents(
    open_round: Callable[..., Any],
    api_client_for: Callable[..., Any],
    clock: Any,
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    client = api_client_for(player)
    url = f"/v1/rounds/{round_obj.code}/bets"

    string_stake = client.post(url, {"side": "UP", "stake_u": "2000000"}, format="json", HTTP_IDEMPOTENCY_KEY="a")
    small = client.post(url, {"side": "UP", "stake_u": 10}, format="json", HTTP_IDEMPOTENCY_KEY="b")
    clock.set(round_obj.lock_at)
    locked = client.post(url, {"side": "UP", "stake_u": 2_000_000}, format="json", HTTP_IDEMPOTENCY_KEY="c")

    assert string_stake.status_code == 400
    assert small.status_code == 422 and small.json()["type"] == "rounds/stake-too-small"
    assert locked.status_code == 409 and locked.json()["type"] == "rounds/locked"
    assert locked["Content-Type"] == "application/problem+json"
    assert Bet.objects.count() == 0 and available(player) == 5_000_000


def test_betting_paused_is_503_and_nothing_moves(
    open_round: Callable[..., Any],
    api_client_for: Callable[..., Any],
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    Switch.objects.create(name=Switch.Name.BETTING_PAUSED, on=True, reason="incident")
    response = api_client_for(player).post(
        f"/v1/rounds/{round_obj.code}/bets",
        {"side": "UP", "stake_u": 1_000_000},
        format="json",
        HTTP_IDEMPOTENCY_KEY="p-1",
    )
    assert response.status_code == 503 and response.json()["type"] == "rounds/betting-paused"
    assert Bet.objects.count() == 0 and available(player) == 5_000_000 and pool_balance(round_obj) == 0
