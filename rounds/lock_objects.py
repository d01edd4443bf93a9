"""Row locks for rounds: the round row first, then (for settlement) its accounts in ascending id order."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from ops.db_guard import service_write_allow

from .errors import RoundNotFound
from .models import Round


def round_lock_row(*, code: str) -> Round:
    """Lock one round's row with SELECT ... FOR UPDATE and return it fresh (and pass the red-line trigger)."""
    service_write_allow()
    try:
        return Round.objects.select_for_update().get(code=code)
    except Round.DoesNotExist as exc:
        raise RoundNotFound(f"There is no round {code}.") from exc


def settlement_accounts_lock(*, round_id: int, sides: Sequence[str], extra_account_ids: Sequence[int]) -> int:
    """Lock the pool, house and paid bettors' accounts in ascending id order; return how many.

    The bettors' accounts are found by a subquery on the round's bets, so a million bets never
    travel to Python; ORDER BY under FOR UPDATE takes the locks in id order (no deadlock with
    `ledger.services.journal_post`, which locks in the same order). Lets settlement pass the red-line trigger.
    """
    service_write_allow()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT a.id FROM ledger_account a WHERE a.id IN ("
            " SELECT b.account_id FROM rounds_bet b WHERE b.round_id = %s AND b.side = ANY(%s)"
            " UNION ALL SELECT unnest(%s::bigint[])"
            ") ORDER BY a.id FOR UPDATE OF a) locked",
            [round_id, list(sides), list(extra_account_ids)],
        )
        (count,) = cursor.fetchone()
    return int(count)
