"""The rounds' ledger invariant: each round pool holds exactly the stakes of its unsettled round."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from ledger.reconciliation import Breach, register_invariant


@register_invariant("round_pools_equal_stakes")
def check_round_pools_equal_stakes() -> Iterable[Breach]:
    """Each round pool's balance equals its round's stakes while unsettled, and 0 once settled."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.name, a.currency, a.balance_u, COALESCE(s.total, 0) FROM ledger_account a"
            " LEFT JOIN rounds_round r ON r.pool_account_id = a.id"
            " LEFT JOIN (SELECT round_id, SUM(stake_u) AS total FROM rounds_bet GROUP BY round_id) s"
            "   ON s.round_id = r.id AND r.status IN ('OPEN', 'LOCKED')"
            " WHERE a.kind = 'round_pool' AND a.balance_u <> COALESCE(s.total, 0)"
        )
        rows = cursor.fetchall()
    for name, currency, balance, stakes in rows:
        yield Breach("round_pools_equal_stakes", currency, f"{name} holds {balance} but unsettled stakes are {stakes}")
