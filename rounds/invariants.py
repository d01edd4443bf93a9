"""The rounds' ledger invariant: each round's pool holds exactly the stakes of its unsettled round.

A round's pool is its pool account `round:<code>:pool` plus its stripes `round:<code>:pool:<i>` (all of
kind ROUND_POOL): bets credit the stripes, the lock folds them into the pool account (`rounds.pools`).
So at every moment the pool and its stripes together hold the round's stakes while it is unsettled and
nothing once it is settled or void, and the stripes hold nothing once the round has left OPEN.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Sum

from ledger.models import Account
from ledger.reconciliation import Breach, register_invariant
from ledger.selectors import balances_of_kind

from .models import Bet, Round


@register_invariant("round_pools_equal_stakes")
def check_round_pools_equal_stakes() -> Iterable[Breach]:
    """Each round's pool plus stripes equals its stakes while unsettled, 0 once settled; no stripe after lock."""
    stakes = dict(
        Bet.objects.filter(round__status__in=Round.UNSETTLED)
        .values("round__code")
        .annotate(total=Sum("stake_u"))
        .values_list("round__code", "total")
    )
    open_codes = set(Round.objects.filter(status=Round.Status.OPEN).values_list("code", flat=True))
    held: dict[tuple[str, str], int] = defaultdict(int)  # (code, currency) -> pool + stripes
    striped: dict[tuple[str, str], int] = defaultdict(int)  # (code, currency) -> stripes
    for _, name, currency, balance in balances_of_kind(kind=Account.Kind.ROUND_POOL):
        parts = name.split(":")  # round:<code>:pool or round:<code>:pool:<stripe>
        key = (parts[1] if len(parts) > 1 else name, currency)
        held[key] += balance
        if len(parts) == 4:
            striped[key] += balance
    for (code, currency), balance in sorted(held.items()):
        expected = stakes.get(code) or 0
        if balance != expected:
            yield Breach(
                "round_pools_equal_stakes",
                currency,
                f"round:{code}:pool with its stripes holds {balance} but unsettled stakes are {expected}",
            )
        if striped[(code, currency)] and code not in open_codes:
            yield Breach(
                "round_pools_equal_stakes",
                currency,
                f"the stripes of round:{code}:pool hold {striped[(code, currency)]} but the round is no longer open",
            )
