"""Row locks for rounds: the round row (the ledger locks its own accounts)."""

from __future__ import annotations

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
