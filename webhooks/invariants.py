"""The deposits invariant, checked by the reconciliation worker with the ledger's own.

Every credited deposit has its own `deposit` journal that credits exactly the deposit's amount to
the player's available account.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, OuterRef, Q

from ledger.models import Account, Entry
from ledger.reconciliation import Breach, register_invariant

from .models import Deposit


@register_invariant("deposit_credited_once")
def check_credited_deposits() -> Iterable[Breach]:
    """A credited deposit's journal credits its amount to its player's available account."""
    credit = Entry.objects.filter(
        journal_id=OuterRef("journal_id"),
        amount_u=OuterRef("amount_u"),
        currency=OuterRef("currency"),
        account__owner_id=OuterRef("user_id"),
        account__kind=Account.Kind.USER_AVAILABLE,
    )
    broken = (
        Deposit.objects.filter(status=Deposit.Status.CREDITED)
        .filter(Q(journal__isnull=True) | ~Q(journal__type="deposit") | ~Exists(credit))
        .values_list("id", "reference", "currency")
    )
    for deposit_id, reference, currency in broken:
        yield Breach("deposit_credited_once", currency, f"deposit {deposit_id} ({reference}) has no matching credit")
