"""The red line's kernel function refuses unconditionally: no setting lets a guarded change through.

Each table's trigger holds in its WHEN the whole test of what may not change (`ops.db_guard.red_line_trigger`),
so the function is reached only by a refused update. The old `backoffice.service_write` setting, which any
session could set, no longer means anything.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION backoffice_red_line() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'red line: % of % (id %) refused; % never change this way (see docs/red-line.md)',
                    TG_OP, TG_TABLE_NAME, OLD.id, TG_ARGV[0]
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

PREVIOUS = r"""
CREATE OR REPLACE FUNCTION backoffice_red_line() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
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


def forward(apps, schema_editor):
    schema_editor.execute(FUNCTION, params=None)


def backward(apps, schema_editor):
    schema_editor.execute(PREVIOUS, params=None)


class Migration(migrations.Migration):
    dependencies = [("ops", "0006_switch_tripped_by")]

    operations = [migrations.RunPython(forward, backward)]
