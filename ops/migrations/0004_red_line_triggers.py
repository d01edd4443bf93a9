"""The red line's trigger function: money rows change only through the services.

The function refuses an UPDATE unless the transaction set `backoffice.service_write` (see `ops/db_guard.py`).
Each app puts its own money table behind it in its own migration (`ops.db_guard.red_line_trigger`): payouts'
withdrawals, webhooks' deposits, rounds' bets.
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


def _forward() -> str:
    return FUNCTION


def _backward() -> str:
    return "DROP FUNCTION IF EXISTS backoffice_red_line();"


def forward(apps, schema_editor):
    schema_editor.execute(_forward(), params=None)


def backward(apps, schema_editor):
    schema_editor.execute(_backward(), params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0003_proposal"),
    ]

    operations = [migrations.RunPython(forward, backward)]
