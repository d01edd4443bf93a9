"""The round and bet factories open rounds and place bets through the services, the ledger balanced."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.models import Journal
from ledger.services import user_account
from rounds.models import Bet, Round
from rounds.tests.factories import BetFactory, RoundFactory, pool_held

pytestmark = pytest.mark.django_db


def pool_balance(round_obj: Round) -> int:
    return pool_held(round_obj)  # the pool account and, before lock, the stripes the bets credit


def test_an_open_round_with_n_bets(clock: Any, prices: Any, assert_ledger_ok: Any) -> None:
    round_obj = RoundFactory.create(clock=clock, prices=prices, bets=4)

    assert round_obj.status == Round.Status.OPEN and clock() < round_obj.lock_at
    stake = round_obj.min_stake_u
    assert (round_obj.up_bets, round_obj.down_bets) == (2, 2)
    assert (round_obj.up_pool_u, round_obj.down_pool_u) == (2 * stake, 2 * stake)
    assert pool_balance(round_obj) == 4 * stake
    assert Journal.objects.filter(type="bet").count() == 4
    for bet in Bet.objects.filter(round=round_obj):
        assert user_account(user=bet.player, currency="USDC").balance_u == 0  # funded with exactly the stake
    assert_ledger_ok()


def test_listed_bets_and_the_reference_close(clock: Any, prices: Any, assert_ledger_ok: Any) -> None:
    round_obj = RoundFactory.create(
        clock=clock, prices=prices, code="20250909", reference="17000.5", bets=[("UP", 2_000_000), ("DOWN", 3_000_000)]
    )

    assert round_obj.code == "20250909" and round_obj.reference_close == "17000.5"
    assert (round_obj.up_pool_u, round_obj.down_pool_u, round_obj.up_bets, round_obj.down_bets) == (
        2_000_000,
        3_000_000,
        1,
        1,
    )
    assert_ledger_ok()


def test_a_bet_from_a_given_players_balance(open_round: Any, fund: Any, player: Any, assert_ledger_ok: Any) -> None:
    round_obj = open_round()
    fund(player, 5_000_000)

    bet = BetFactory.create(round=round_obj, player=player, side="DOWN", stake_u=2_000_000)

    assert (bet.player, bet.side, bet.stake_u) == (player, "DOWN", 2_000_000)
    assert user_account(user=player, currency="USDC").balance_u == 3_000_000
    assert Journal.objects.get(reference=f"bet:{bet.bet_id}").type == "bet"
    assert_ledger_ok()


def test_the_factories_write_nothing_themselves(clock: Any, prices: Any) -> None:
    with pytest.raises(TypeError, match="needs the rounds tests' fixtures"):
        RoundFactory.create()
    round_obj = RoundFactory.create(clock=clock, prices=prices)
    with pytest.raises(TypeError, match="bet_place writes the bet"):
        BetFactory.create(round=round_obj, payout_u=10)
    assert not Bet.objects.exists()
