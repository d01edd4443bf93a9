"""Row locks for withdrawals: every write locks its withdrawal first (SELECT ... FOR UPDATE)."""

from __future__ import annotations

from .errors import WithdrawalNotFound
from .models import Withdrawal


def withdrawal_lock(*, withdrawal_id: int) -> Withdrawal:
    """Lock one withdrawal row until the end of the transaction and return it fresh.

    The red line (`ops/db_guard.py`) checks what the transaction then does to it, not who locked it.
    """
    try:
        return Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
    except (Withdrawal.DoesNotExist, ValueError, TypeError):
        raise WithdrawalNotFound(f"No withdrawal {withdrawal_id}.") from None
