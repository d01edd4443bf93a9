"""Ledger invariant owned by payouts: held balances equal the withdrawals in held states."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Sum

from ledger.models import Account
from ledger.reconciliation import Breach, register_invariant

from .models import Withdrawal


@register_invariant("held_equals_withdrawals")
def check_held_equals_withdrawals() -> Iterable[Breach]:
    """Per user and currency, the user_held balance equals the sum of withdrawals in held states."""
    held = {
        (owner_id, currency): int(balance_u)
        for owner_id, currency, balance_u in Account.objects.filter(kind=Account.Kind.USER_HELD)
        .exclude(balance_u=0)
        .values_list("owner_id", "currency", "balance_u")
    }
    in_flight = {
        (user_id, currency): int(total or 0)
        for user_id, currency, total in Withdrawal.objects.filter(state__in=Withdrawal.HELD_STATES)
        .values("user_id", "currency")
        .annotate(total=Sum("amount_u"))
        .values_list("user_id", "currency", "total")
    }
    for user_id, currency in sorted(set(held) | set(in_flight), key=lambda k: (str(k[0]), k[1])):
        held_u, withdrawals_u = held.get((user_id, currency), 0), in_flight.get((user_id, currency), 0)
        if held_u != withdrawals_u:
            yield Breach(
                "held_equals_withdrawals",
                currency,
                f"user {user_id} holds {held_u} but withdrawals in held states total {withdrawals_u}",
            )
