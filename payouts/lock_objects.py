"""Row locks for withdrawals: every write locks its withdrawal first (SELECT ... FOR UPDATE)."""

from __future__ import annotations

from ops.db_guard import service_write_allow

from .errors import WithdrawalNotFound
from .models import Withdrawal


def withdrawal_lock(*, withdrawal_id: int) -> Withdrawal:
    """Lock one withdrawal row until the end of the transaction and return it fresh.

    Locking is the services' door: it also lets this transaction through the red-line trigger.
    """
    service_write_allow()
    try:
        return Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
    except (Withdrawal.DoesNotExist, ValueError, TypeError):
        raise WithdrawalNotFound(f"No withdrawal {withdrawal_id}.") from None
