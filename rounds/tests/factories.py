"""Factories for rounds and bets, through the services: `round_open` and `bet_place`.

A round opens only with a reference close from the oracle and at the right time, so `RoundFactory`
takes the rounds tests' patched `clock` and `prices` (fixtures in `rounds/tests/conftest.py`): it sets
the previous session's close, moves the clock to an hour before the lock, and opens the round as the
beat would. `RoundFactory.create(clock=clock, prices=prices, bets=4)` also places four bets (UP, DOWN, UP,
DOWN at the minimum stake), `bets=[("UP", 2_000_000), ("DOWN", 3_000_000)]` the bets listed.

`BetFactory.create(round=round_obj, side="UP", stake_u=2_000_000)` places one bet by a new player funded
with exactly the stake (through the ledger), or by `player=` from their own balance.

An OPEN round's pool figures are not stored on it (bets do not write the round's row): `RoundFactory`
returns the round with them as the API shows them (`rounds.pools.pools_show`), and `pool_held` is the
money in a round's pool, its pool account plus the stripes the bets credit before lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import factory

from accounts.models import User
from ledger.models import Account
from ledger.tests.factories import FundedPlayerFactory
from ops.actors import BEAT
from rounds.accounts import round_pool_stripes
from rounds.betting import bet_place
from rounds.domain.calendar import parse_code, previous_session, session_times
from rounds.models import Bet, Round
from rounds.pools import pools_show
from rounds.services import round_open

if TYPE_CHECKING:
    from rounds.tests.conftest import Clock, Prices

SIDES = ("UP", "DOWN")


def pool_held(round_obj: Round) -> int:
    """Return the money in a round's pool: its pool account plus its stripes (bets credit those before lock)."""
    stripes = round_pool_stripes(code=round_obj.code, currency=round_obj.currency)
    return Account.objects.get(pk=round_obj.pool_account_id).balance_u + sum(s.balance_u for s in stripes)


class BetFactory(factory.django.DjangoModelFactory[Bet]):
    class Meta:
        model = Bet

    round: Round | None = None  # required: the open round to bet on
    side = factory.Iterator(SIDES)
    stake_u = 1_000_000
    player = factory.SubFactory(
        FundedPlayerFactory,
        balance_u=factory.SelfAttribute("..stake_u"),
        currency=factory.SelfAttribute("..round.currency"),
    )

    @classmethod
    def _create(
        cls,
        model_class: type[Bet],
        *args: Any,
        round: Round,
        side: str,
        stake_u: int,
        player: User,
        **kwargs: Any,
    ) -> Bet:
        if args or kwargs:
            raise TypeError(f"BetFactory cannot set {sorted(kwargs)}: bet_place writes the bet.")
        return bet_place(user=player, code=round.code, side=side, stake_u=stake_u)


class RoundFactory(factory.django.DjangoModelFactory[Round]):
    class Meta:
        model = Round
        skip_postgeneration_save = True

    code = "20250908"
    reference = "100"  # the previous session's close the oracle reports
    clock: Clock | None = None
    prices: Prices | None = None

    @classmethod
    def _create(
        cls,
        model_class: type[Round],
        *args: Any,
        code: str,
        reference: str,
        clock: Clock | None,
        prices: Prices | None,
        **kwargs: Any,
    ) -> Round:
        if args or kwargs:
            raise TypeError(f"RoundFactory cannot set {sorted(kwargs)}: round_open writes the round.")
        if clock is None or prices is None:
            raise TypeError(
                "RoundFactory needs the rounds tests' fixtures: RoundFactory.create(clock=clock, prices=prices)."
            )
        day = parse_code(code)
        prices.set(previous_session(day=day), reference)
        clock.set(session_times(day=day).lock_utc - timedelta(hours=1))
        round_obj, created = round_open(code=code, acting_user=BEAT)
        if not created:
            raise AssertionError(f"Round {code} was already open.")
        return round_obj

    @factory.post_generation
    def bets(obj: Round, create: bool, extracted: int | Sequence[tuple[str, int]] | None, **kwargs: Any) -> None:  # noqa: N805
        """Place the bets asked for through bet_place, each by a new funded player."""
        if not create or not extracted:
            return
        wanted = (
            [(SIDES[i % 2], obj.min_stake_u) for i in range(extracted)] if isinstance(extracted, int) else extracted
        )
        for side, stake_u in wanted:
            BetFactory.create(round=obj, side=side, stake_u=stake_u)
        obj.refresh_from_db()
        pools_show(round_obj=obj)
