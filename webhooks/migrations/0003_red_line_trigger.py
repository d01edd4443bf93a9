"""Put a deposit's money columns behind the red line (the kernel's `backoffice_red_line()`, see `ops/db_guard.py`)."""

from django.db import migrations

from ops.db_guard import red_line_trigger

FORWARD, BACKWARD = red_line_trigger(
    table="webhooks_deposit",
    what="a deposit's money columns",
    columns=("amount_u", "currency", "refunded_u", "charged_back_u"),
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0004_red_line_triggers"),
        ("webhooks", "0002_deposit_flow_id"),
    ]

    operations = [migrations.RunPython(forward, backward)]
