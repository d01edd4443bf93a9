"""Row locks for postings: every account a posting touches, in ascending id order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.db import connection


class LockedAccount(NamedTuple):
    """What a posting needs to know about an account it holds locked."""

    pk: int
    name: str
    currency: str
    balance_u: int
    allow_negative: bool


def accounts_lock(account_ids: Iterable[int]) -> dict[int, LockedAccount]:
    """Lock the accounts with SELECT ... FOR UPDATE in ascending id order; return them by id.

    Plain SQL rather than the ORM: this runs on every posting, and compiling the ORM query was most
    of a transfer's CPU (bench/ledger.py).
    """
    ids = sorted(set(account_ids))
    placeholders = ", ".join(["%s"] * len(ids))
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, name, currency, balance_u, allow_negative FROM ledger_account "  # noqa: S608
            f"WHERE id IN ({placeholders}) ORDER BY id{lock}",
            ids,
        )
        return {row[0]: LockedAccount(*row) for row in cursor.fetchall()}
