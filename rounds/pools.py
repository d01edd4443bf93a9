"""A round's pool while it takes bets: stakes striped over ledger accounts, folded into the pool at lock.

A bet of an OPEN round credits one of `POOL_STRIPES` stripe accounts of the round
(`ledger.services.round_pool_stripe_account`, chosen by the player's id), not the round's one pool account,
and never updates the round's row: bets of one round do not all write one balance row, so they run
concurrently (`rounds.lock_objects` holds the round shared for each bet). When the round locks,
`pools_fold` (inside `round_lock`'s transaction, after every bet in flight has committed) moves the stripes
into the round's pool account with one journal through the ledger and returns the pool figures from one
aggregate over the bets, which `round_lock` stores on the round. From then on everything (settlement, the
emergency stop, the reports) finds the whole pool in the pool account and the figures on the round.

Before lock the round's pool figures are not stored anywhere: `pools_live` computes them from the bets.
The invariant `round_pools_equal_stakes` (rounds/invariants.py) holds at every moment: the pool plus its
stripes equal the round's stakes while it is unsettled, the stripes are empty once it has locked.
"""

from __future__ import annotations

from django.db import connection

from ledger.models import Account
from ledger.selectors import round_pool_stripes
from ledger.services import Leg, journal_post, round_pool_stripe_account
from ops.actors import Actor

from . import errors
from .models import Round

POOL_STRIPES = 16

PoolFigures = dict[str, int]  # up_pool_u, down_pool_u, up_bets, down_bets: the Round fields of the same names


def stripe_account(*, round_obj: Round, player_id: int) -> Account:
    """Return the stripe account a player's stake in this round goes to."""
    return round_pool_stripe_account(code=round_obj.code, currency=round_obj.currency, stripe=player_id % POOL_STRIPES)


def stripes_create(*, code: str, currency: str) -> None:
    """Create a new round's stripe accounts up front (bets would create them on first use otherwise)."""
    for stripe in range(POOL_STRIPES):
        round_pool_stripe_account(code=code, currency=currency, stripe=stripe)


def pools_live(*, round_obj: Round) -> PoolFigures:
    """Return the round's pool figures: from its bets while OPEN, as stored on the round once locked."""
    if round_obj.status != Round.Status.OPEN:
        return {
            "up_pool_u": round_obj.up_pool_u,
            "down_pool_u": round_obj.down_pool_u,
            "up_bets": round_obj.up_bets,
            "down_bets": round_obj.down_bets,
        }
    return _bets_aggregate(round_id=round_obj.pk)


def pools_show(*, round_obj: Round) -> Round:
    """Return the round with its pool fields set to `pools_live` (in memory only, for display; never saved)."""
    if round_obj.status == Round.Status.OPEN:
        for name, value in pools_live(round_obj=round_obj).items():
            setattr(round_obj, name, value)
    return round_obj


def _bets_aggregate(*, round_id: int) -> PoolFigures:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(CASE WHEN side = 'UP' THEN stake_u ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN side = 'DOWN' THEN stake_u ELSE 0 END), 0),"
            " COUNT(CASE WHEN side = 'UP' THEN 1 END), COUNT(CASE WHEN side = 'DOWN' THEN 1 END)"
            " FROM rounds_bet WHERE round_id = %s",
            [round_id],
        )
        up_u, down_u, up_n, down_n = (int(value) for value in cursor.fetchone())
    return {"up_pool_u": up_u, "down_pool_u": down_u, "up_bets": up_n, "down_bets": down_n}


def pools_fold(*, round_obj: Round, acting_user: Actor) -> PoolFigures:
    """Move the round's stripes into its pool account and return its pool figures (inside `round_lock`).

    The caller holds the round exclusively (`round_lock_row`), so no bet is in flight and the stripes'
    balances are final. One journal `round:<code>:pool:fold` (the stripes' balances out, their sum into
    the pool) through `ledger.services.journal_post`, by the locking actor; then the pool account must
    hold exactly the round's stakes and every stripe nothing, or SettlementMismatch and nothing moved.
    """
    figures = _bets_aggregate(round_id=round_obj.pk)
    stakes = figures["up_pool_u"] + figures["down_pool_u"]
    stripes = [account for account in round_pool_stripes(code=round_obj.code, currency=round_obj.currency)]
    legs = [Leg(account, -account.balance_u) for account in stripes if account.balance_u]
    pool = Account.objects.get(pk=round_obj.pool_account_id)
    if legs:
        journal_post(
            type="round_pool_fold",
            reference=f"round:{round_obj.code}:pool:fold",
            legs=[*legs, Leg(pool, -sum(leg.amount_u for leg in legs))],
            actor=acting_user,
            metadata={"round": round_obj.code, "stripes": len(legs)},
        )
        pool.refresh_from_db(fields=["balance_u"])
    left = Account.objects.filter(pk__in=[account.pk for account in stripes]).exclude(balance_u=0).count()
    if pool.balance_u != stakes or left:
        raise errors.SettlementMismatch(
            f"Round {round_obj.code}: the pool holds {pool.balance_u} and {left} stripes are not empty, but its "
            f"bets stake {stakes}; nothing moved."
        )
    return figures


__all__ = ["POOL_STRIPES", "PoolFigures", "pools_fold", "pools_live", "pools_show", "stripe_account", "stripes_create"]
