"""Row locks for postings: every account a posting touches, in ascending id order."""

from __future__ import annotations

from collections.abc import Iterable

from .models import Account


def accounts_lock(account_ids: Iterable[int]) -> dict[int, Account]:
    """Lock the accounts with SELECT ... FOR UPDATE in ascending id order; return them by id."""
    ids = sorted(set(account_ids))
    locked = Account.objects.filter(pk__in=ids).order_by("pk").select_for_update()
    return {account.pk: account for account in locked}
