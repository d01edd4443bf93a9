"""The red line, enforced by PostgreSQL: the database checks what a change to a money row IS, not who asks.

No setting, flag or session state opens it (the old `backoffice.service_write` setting that any session
could set is gone and lets nothing through). Each app puts its own money table behind two kinds of guard,
in its own migration:

- **What never changes** (`red_line_operation`, one row trigger per table): a withdrawal's amount,
  currency and player; a deposit's amount, currency and player, and its refunded/charged-back totals never
  go down nor past the amount; a bet's stake, side, account and player, and its payout once set. The
  trigger's WHEN holds the whole test, so an allowed update (a settlement's million payouts: NULL to a
  value) calls no function per row; a refused one reaches `backoffice_red_line()` (migration
  `ops.0007_red_line_content`), which raises `red line: UPDATE of <table> ...` (SQLSTATE 42501).
- **What a change must carry** (the apps' own functions): a withdrawal's state moves only along its
  state machine (`payouts.models.Withdrawal`'s transitions), is born `requested`, and by commit its money
  movement is in the ledger (a deferred constraint trigger): `requested` needs its hold journal
  (`withdrawal:<id>:hold`), `paid` its burn (`withdrawal:<id>:payout`), `rejected`/`cancelled`/`refunded`
  its release (`withdrawal:<id>:release`), each moving exactly the withdrawal's amount on the player's held
  account. A deposit's refunded or charged-back total rises only by a refund or chargeback journal of
  this transaction debiting the player by exactly the rise. A bet's payout is set only while its round is
  LOCKED (being settled): a statement trigger checks the whole UPDATE with one set-based query over its
  transition tables.

Residual risk (docs/red-line.md):

- A superuser, or the tables' owner, can do anything: disable a trigger, set `session_replication_role =
  replica`, rewrite a function. So production never connects as either; the application role
  (`backoffice_app`, h19-roles) owns no table, cannot disable triggers and cannot set
  `session_replication_role` (a superuser-only setting).
- An insider with the application role can still do what the services can do, through the same doors:
  post any balanced journal through the ledger's posting functions (within the overdraft rules), then
  move a withdrawal along a legal transition whose money is in the ledger; move a withdrawal from
  `requested` to `approved` without the maker-checker (no money moves, but the payout worker would then
  pay it from the player's own held funds); mark a payout `payout_failed`; insert bets with no stake
  journal (a settlement then refuses: the pool no longer equals the stakes). The guard proves the rows
  agree with the ledger; the audit trail, `check_ledger` and the reconciliation catch the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import migrations

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def red_line_trigger(
    *, table: str, what: str, columns: tuple[str, ...], refused_also: str = "", watched: tuple[str, ...] = ()
) -> tuple[str, str]:
    """Return (forward, backward) SQL of a table's red-line row trigger, for the owning app's migration.

    The trigger refuses an UPDATE changing any of `columns`, or matching `refused_also` (an SQL condition
    on OLD and NEW, e.g. a payout changed once set). `watched` lists further columns that condition reads,
    so the trigger fires when they are SET. The whole test is the trigger's WHEN: an update that passes it
    calls no function (a settlement updates a million bets); one that fails reaches the kernel's
    `backoffice_red_line()`, which refuses unconditionally. The forward SQL drops a trigger of the same
    name first (earlier definitions of the same guard).
    """
    changed = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)
    condition = f"({changed}) OR ({refused_also})" if refused_also else changed
    quoted_what = what.replace("'", "''")
    fired_by = ", ".join(dict.fromkeys((*columns, *watched)))
    forward = (
        f"DROP TRIGGER IF EXISTS {table}_red_line ON {table};\n"
        f"CREATE TRIGGER {table}_red_line BEFORE UPDATE OF {fired_by} ON {table} "
        f"FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION backoffice_red_line('{quoted_what}');"
    )
    return forward, f"DROP TRIGGER IF EXISTS {table}_red_line ON {table};"


def red_line_operation(
    *,
    table: str,
    what: str,
    columns: tuple[str, ...],
    refused_also: str = "",
    watched: tuple[str, ...] = (),
    recreate: bool = False,
) -> migrations.RunPython:
    """The migration operation putting `table` behind the red line (see `red_line_trigger`).

    With `recreate`, the operation re-creates a trigger an earlier migration created (a new definition of
    the same guard): reversing it leaves the trigger in place, and reversing the earlier one drops it.
    """
    forward_sql, backward_sql = red_line_trigger(
        table=table, what=what, columns=columns, refused_also=refused_also, watched=watched
    )
    if recreate:
        backward_sql = ""

    def forward(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
        schema_editor.execute(forward_sql, params=None)

    def backward(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if backward_sql:
            schema_editor.execute(backward_sql, params=None)

    return migrations.RunPython(forward, backward)


def red_line_sql_operation(*, forward: str, backward: str) -> migrations.RunPython:
    """An app's own red-line functions and triggers (what a change must carry)."""

    def run_forward(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
        schema_editor.execute(forward, params=None)

    def run_backward(apps: object, schema_editor: BaseDatabaseSchemaEditor) -> None:
        schema_editor.execute(backward, params=None)

    return migrations.RunPython(run_forward, run_backward)
