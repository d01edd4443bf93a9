"""Put a withdrawal's state and amount behind the red line (the kernel's `backoffice_red_line()`, see `ops/db_guard.py`)."""

from django.db import migrations

from ops.db_guard import red_line_trigger

FORWARD, BACKWARD = red_line_trigger(
    table="payouts_withdrawal",
    what="a withdrawal's state and amount",
    columns=("state", "amount_u", "currency", "user_id"),
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
        ("payouts", "0005_withdrawal_flow_id"),
    ]

    operations = [migrations.RunPython(forward, backward)]
