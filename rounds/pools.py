"""A round's pool while it takes bets: stakes and figures striped, folded into the round at lock.

A bet of an OPEN round never updates the round's row, and bets of one round do not all write one row:

- its stake goes to one of `POOL_STRIPES` ledger stripe accounts of the round
  (`rounds.accounts.round_pool_stripe_account`, chosen by the player's id), not the one pool account;
- its stake and count are added to the same stripe's `PoolStripe` row (one upsert), the round's live
  pool figures (the API, the console) being the sums over its stripes: a handful of rows, never its bets.

Both happen inside the bet's one database call (`rounds_bet_place`, migration 0012; `rounds.betting`), the
stripe being the player's id modulo `POOL_STRIPES`. So bets run concurrently (the bet holds the round shared,
`rounds.lock_objects`). When the round
locks, `pools_fold` (inside `round_lock`'s transaction, after every bet in flight has committed) moves the
stripe accounts into the round's pool account with one journal through the ledger, computes the pool
figures from one aggregate over the bets (checked against the stripes' figures), and `round_lock` stores
them on the round. From then on everything (settlement, the emergency stop, the reports) finds the whole
pool in the pool account and the figures on the round.

The invariant `round_pools_equal_stakes` (rounds/invariants.py) holds at every moment: the pool account
plus its stripes hold the round's stakes while it is unsettled, and the stripes nothing once it has locked.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.db import connection, connections, router
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from ledger.models import Account
from ledger.services import Leg, journal_post
from ops.actors import Actor

from . import errors
from .accounts import round_pool_stripe_account, round_pool_stripes
from .models import PoolStripe, Round

logger = logging.getLogger(__name__)

POOL_STRIPES = 16

PoolFigures = dict[str, int]  # up_pool_u, down_pool_u, up_bets, down_bets: the Round fields of the same names
FIGURES = ("up_pool_u", "down_pool_u", "up_bets", "down_bets")
LIVE = "live_"  # the prefix of `with_live_pools`' annotations


def stripe_account(*, round_obj: Round, player_id: int) -> Account:
    """Return the stripe account a player's stake in this round goes to."""
    return round_pool_stripe_account(code=round_obj.code, currency=round_obj.currency, stripe=player_id % POOL_STRIPES)


def stripes_create(*, code: str, currency: str) -> None:
    """Create a new round's stripe accounts up front (bets would create them on first use otherwise)."""
    for stripe in range(POOL_STRIPES):
        round_pool_stripe_account(code=code, currency=currency, stripe=stripe)


def with_live_pools(queryset: QuerySet[Round]) -> QuerySet[Round]:
    """Annotate rounds with the sums of their stripes' figures (`live_up_pool_u`...), in the same query."""
    return queryset.annotate(
        **{
            f"{LIVE}{name}": Coalesce(
                Subquery(
                    PoolStripe.objects.filter(round=OuterRef("pk"))
                    .values("round")
                    .annotate(total=Sum(name))
                    .values("total")
                ),
                0,
            )
            for name in FIGURES
        }
    )


Converters = tuple[tuple[int, Any], ...]  # (column position, Field.from_db_value-like converter)


@functools.cache
def _round_with_pools_sql(alias: str, current: bool) -> tuple[str, tuple[str, ...], Converters]:
    """The SQL of `round_with_pools`, written once per process from the model (never compiled per request).

    `current` picks, in one statement, the first of: the round with the code given, the OPEN round with the
    lowest code, the round with the highest code (parameters: code, OPEN); else only the round with the code.
    The stripes' sums are a lateral aggregate over the picked round's stripes (at most POOL_STRIPES rows).
    Returned with the fields' converters (the JSON fields' parsing), which the ORM would have applied.
    """
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = Round._meta.concrete_fields
    columns = ", ".join(f"r.{quote(str(field.column))}" for field in fields)
    table, stripes = quote(Round._meta.db_table), quote(PoolStripe._meta.db_table)
    pick = f"SELECT 1 AS rank, id FROM {table} WHERE code = %s"
    if current:
        pick = (
            f"({pick}) UNION ALL (SELECT 2, id FROM {table} WHERE status = %s ORDER BY code LIMIT 1)"
            f" UNION ALL (SELECT 3, id FROM {table} ORDER BY code DESC LIMIT 1) ORDER BY rank LIMIT 1"
        )
    sums = ", ".join(f"COALESCE(SUM({quote(name)}), 0)" for name in FIGURES)
    sql = (
        f"SELECT {columns}, live.* FROM ({pick}) AS pick JOIN {table} r ON r.id = pick.id"
        f" CROSS JOIN LATERAL (SELECT {sums} FROM {stripes} WHERE round_id = r.id) AS live"
    )
    converters = tuple(
        (i, converter) for i, field in enumerate(fields) for converter in field.get_db_converters(connection)
    )
    return sql, tuple(field.attname for field in fields), converters


def round_with_pools(*, code: str, current: bool = False) -> Round | None:
    """Return the round with this code (or, if `current`, the fallback above) with its live pool figures.

    One statement written once per process (`_round_with_pools_sql`): the public round reads run no ORM
    query compilation, which cost more than the database's own time. The figures are set as the
    `with_live_pools` annotations, so `pools_live` and `pools_show` use them.
    """
    alias = router.db_for_read(Round)
    sql, names, converters = _round_with_pools_sql(alias, current)
    params = [code, Round.Status.OPEN] if current else [code]
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row[: len(names)])
    for i, converter in converters:
        values[i] = converter(values[i], None, connections[alias])
    round_obj = Round.from_db(alias, list(names), values)
    for name, value in zip(FIGURES, row[len(names) :], strict=True):
        setattr(round_obj, f"{LIVE}{name}", int(value))
    return round_obj


def pools_live(*, round_obj: Round) -> PoolFigures:
    """Return the round's pool figures: its stripes' sums while OPEN, as stored on the round once locked.

    Uses the annotations of `with_live_pools` when the round was read with them, else one query over the
    round's stripes (at most `POOL_STRIPES` rows, whatever the number of bets).
    """
    if round_obj.status != Round.Status.OPEN:
        return {name: getattr(round_obj, name) for name in FIGURES}
    if all(hasattr(round_obj, f"{LIVE}{name}") for name in FIGURES):
        return {name: int(getattr(round_obj, f"{LIVE}{name}")) for name in FIGURES}
    sums = PoolStripe.objects.filter(round_id=round_obj.pk).aggregate(
        **{name: Coalesce(Sum(name), 0) for name in FIGURES}
    )
    return {name: int(sums[name]) for name in FIGURES}


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
    hold exactly the round's stakes and every stripe nothing, or SettlementMismatch and nothing moved. The
    stored figures come from the bets; stripes' figures that differ (shown before lock) are logged.
    """
    figures = _bets_aggregate(round_id=round_obj.pk)
    stakes = figures["up_pool_u"] + figures["down_pool_u"]
    striped = pools_live(round_obj=round_obj)
    if striped != figures:  # display figures only (bets written another way, e.g. before the stripes existed)
        logger.warning("round %s: its pool stripes show %s but its bets %s", round_obj.code, striped, figures)
    stripes = round_pool_stripes(code=round_obj.code, currency=round_obj.currency)
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


__all__ = [
    "POOL_STRIPES",
    "PoolFigures",
    "pools_fold",
    "pools_live",
    "pools_show",
    "round_with_pools",
    "stripe_account",
    "stripes_create",
    "with_live_pools",
]
