"""The rounds' ledger invariant: each round pool holds exactly the stakes of its unsettled round."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Sum

from ledger.models import Account
from ledger.reconciliation import Breach, register_invariant
from ledger.selectors import balances_of_kind

from .models import Bet, Round


@register_invariant("round_pools_equal_stakes")
def check_round_pools_equal_stakes() -> Iterable[Breach]:
    """Each round pool's balance equals its round's stakes while unsettled, and 0 once settled."""
    stakes = dict(
        Bet.objects.filter(round__status__in=Round.UNSETTLED)
        .values("round__pool_account_id")
        .annotate(total=Sum("stake_u"))
        .values_list("round__pool_account_id", "total")
    )
    for account_id, name, currency, balance in balances_of_kind(kind=Account.Kind.ROUND_POOL):
        expected = stakes.get(account_id) or 0
        if balance != expected:
            yield Breach(
                "round_pools_equal_stakes", currency, f"{name} holds {balance} but unsettled stakes are {expected}"
            )
