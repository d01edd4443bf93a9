"""Red-line triggers: a withdrawal's state, a deposit's and a bet's money columns change only through the services.

Each trigger refuses the UPDATE unless the transaction set `backoffice.service_write` (see `ops/db_guard.py`).
PostgreSQL only; the embedded SQLite default relies on the services alone.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION backoffice_red_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('backoffice.service_write', true), '') <> 'on' THEN
        RAISE EXCEPTION 'red line: % of % (id %) refused; % change only through the back office services '
                        '(see docs/ops/on_call_runbook.md, "The red line")',
                        TG_OP, TG_TABLE_NAME, OLD.id, TG_ARGV[0]
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
"""

TRIGGERS = (
    ("payouts_withdrawal", "a withdrawal''s state and amount", ("state", "amount_u", "currency", "user_id")),
    ("webhooks_deposit", "a deposit''s money columns", ("amount_u", "currency", "refunded_u", "charged_back_u")),
    ("rounds_bet", "a bet''s money columns", ("stake_u", "payout_u", "side", "account_id")),
)


def _forward() -> str:
    parts = [FUNCTION]
    for table, what, columns in TRIGGERS:
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        parts.append(
            f"CREATE TRIGGER {table}_red_line BEFORE UPDATE OF {', '.join(columns)} ON {table} "
            f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION backoffice_red_line('{what}');"
        )
    return "\n".join(parts)


def _backward() -> str:
    drops = [f"DROP TRIGGER IF EXISTS {table}_red_line ON {table};" for table, _, _ in TRIGGERS]
    return "\n".join([*drops, "DROP FUNCTION IF EXISTS backoffice_red_line();"])


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_forward(), params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_backward(), params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0003_proposal"),
        ("payouts", "0004_payout_status_check"),
        ("webhooks", "0001_initial"),
        ("rounds", "0004_maker_checker"),
    ]

    operations = [migrations.RunPython(forward, backward)]
