"""The red line, enforced by PostgreSQL: money rows change only inside a service's transaction.

Triggers (the function in `ops.0004_red_line_triggers`, one trigger per table in its app's migration) refuse an UPDATE of a withdrawal's state or amount,
a deposit's money columns, or a bet's stake, side or payout, unless the transaction first called
`service_write_allow()`. Only the services' lock helpers call it (`payouts.lock_objects.withdrawal_lock`,
`rounds.lock_objects`, `webhooks.processing.webhook_event_process`), so a manual
`UPDATE payouts_withdrawal SET state = 'paid'` in psql fails with `red line: ...` and changes nothing.
The setting is transaction-local (`set_config(..., true)`, like `SET LOCAL`): it ends with the transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connection, migrations

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

SERVICE_WRITE_SETTING = "backoffice.service_write"


def service_write_allow() -> None:
    """Let this transaction's writes through the red-line triggers (services only, inside atomic())."""
    if not connection.in_atomic_block:
        raise RuntimeError("service_write_allow() must run inside transaction.atomic().")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', true)", [SERVICE_WRITE_SETTING])


def red_line_trigger(*, table: str, what: str, columns: tuple[str, ...]) -> tuple[str, str]:
    """Return (forward, backward) SQL putting one table behind the red line, for the owning app's migration.

    The trigger function `backoffice_red_line()` is the kernel's (`ops.0004_red_line_triggers`); each app
    puts its own money table behind it, so the kernel's migrations name no product table. The forward SQL
    drops a trigger of the same name first: databases migrated before the triggers moved to their apps
    already have it. The trigger's WHEN also tests the setting the function tests, so a service's update
    (setting on: the function would return the row unchanged) calls no function per row: a settlement
    writes a million payouts. A row whose money changes without the setting still reaches the function,
    which refuses it.
    """
    changed = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)
    refused = f"coalesce(current_setting('{SERVICE_WRITE_SETTING}', true), '') <> 'on'"
    quoted_what = what.replace("'", "''")
    forward = (
        f"DROP TRIGGER IF EXISTS {table}_red_line ON {table};\n"
        f"CREATE TRIGGER {table}_red_line BEFORE UPDATE OF {', '.join(columns)} ON {table} "
        f"FOR EACH ROW WHEN (({changed}) AND {refused}) EXECUTE FUNCTION backoffice_red_line('{quoted_what}');"
    )
    return forward, f"DROP TRIGGER IF EXISTS {table}_red_line ON {table};"


def red_line_operation(
    *, table: str, what: str, columns: tuple[str, ...], recreate: bool = False
) -> migrations.RunPython:
    """The migration operation putting `table` behind the red line.

    With `recreate`, the operation re-creates a trigger an earlier migration created (a new definition of
    the same guard): reversing it leaves the trigger in place, and reversing the earlier one drops it.
    """
    forward_sql, backward_sql = red_line_trigger(table=table, what=what, columns=columns)
    if recreate:
        backward_sql = ""

    def forward(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
        schema_editor.execute(forward_sql, params=None)

    def backward(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if backward_sql:
            schema_editor.execute(backward_sql, params=None)

    return migrations.RunPython(forward, backward)
