"""The red line, enforced by PostgreSQL: money rows change only inside a service's transaction.

Triggers (migration `ops.0004_red_line_triggers`) refuse an UPDATE of a withdrawal's state or amount,
a deposit's money columns, or a bet's stake, side or payout, unless the transaction first called
`service_write_allow()`. Only the services' lock helpers call it (`payouts.lock_objects.withdrawal_lock`,
`rounds.lock_objects`, `webhooks.processing.webhook_event_process`), so a manual
`UPDATE payouts_withdrawal SET state = 'paid'` in psql fails with `red line: ...` and changes nothing.
The setting is transaction-local (`set_config(..., true)`, like `SET LOCAL`): it ends with the transaction.
"""

from __future__ import annotations

from django.db import connection

SERVICE_WRITE_SETTING = "backoffice.service_write"


def service_write_allow() -> None:
    """Let this transaction's writes through the red-line triggers (services only, inside atomic())."""
    if connection.vendor != "postgresql":
        return  # the embedded SQLite default has no red-line triggers
    if not connection.in_atomic_block:
        raise RuntimeError("service_write_allow() must run inside transaction.atomic().")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', true)", [SERVICE_WRITE_SETTING])
