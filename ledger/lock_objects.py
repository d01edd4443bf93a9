"""Row locks for postings: every account a posting touches, in ascending id order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection


def accounts_lock_from_query(
    *, sql: str, params: Sequence[Any], extra_ids: list[int], currency: str
) -> tuple[int, int]:
    """Lock the accounts a query names (`SELECT account_id, ...`) plus `extra_ids`, in ascending id order.

    For bulk postings: the accounts are found by a subquery, so a million legs never travel to Python;
    ORDER BY under FOR UPDATE takes the locks in id order, as the posting functions do (no deadlock with them).
    Returns (accounts locked, how many of them are not in `currency`).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE currency <> %s) FROM (SELECT a.id, a.currency"  # noqa: S608
            " FROM ledger_account a WHERE a.id IN ("
            f"SELECT s.account_id FROM ({sql}) AS s UNION ALL SELECT unnest(%s::bigint[])"
            ") ORDER BY a.id FOR UPDATE OF a) locked",
            [currency, *params, extra_ids],
        )
        count, foreign = cursor.fetchone()
    return int(count), int(foreign)
