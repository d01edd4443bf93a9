"""The deposits invariant, checked by the reconciliation worker with the ledger's own.

Every credited deposit has its own `deposit` journal that credits exactly the deposit's amount to
the player's available account.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from ledger.reconciliation import Breach, register_invariant


@register_invariant("deposit_credited_once")
def check_credited_deposits() -> Iterable[Breach]:
    """A credited deposit's journal credits its amount to its player's available account."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.id, d.reference, d.currency FROM webhooks_deposit d "
            "LEFT JOIN ledger_journal j ON j.id = d.journal_id "
            "WHERE d.status = 'credited' AND (j.id IS NULL OR j.type <> 'deposit' OR NOT EXISTS ("
            "  SELECT 1 FROM ledger_entry e JOIN ledger_account a ON a.id = e.account_id "
            "  WHERE e.journal_id = j.id AND e.amount_u = d.amount_u AND e.currency = d.currency "
            "  AND a.owner_id = d.user_id AND a.kind = 'user_available'))"
        )
        rows = cursor.fetchall()
    for deposit_id, reference, currency in rows:
        yield Breach("deposit_credited_once", currency, f"deposit {deposit_id} ({reference}) has no matching credit")
