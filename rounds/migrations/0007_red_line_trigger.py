"""Put a bet's money columns behind the red line (the kernel's `backoffice_red_line()`, see `ops/db_guard.py`)."""

from django.db import migrations

from ops.db_guard import red_line_trigger

FORWARD, BACKWARD = red_line_trigger(
    table="rounds_bet", what="a bet's money columns", columns=("stake_u", "payout_u", "side", "account_id")
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
        ("rounds", "0006_flow_ids"),
    ]

    operations = [migrations.RunPython(forward, backward)]
