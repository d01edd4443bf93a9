"""Put a bet's money columns behind the red line (the kernel's `backoffice_red_line()`, see `ops/db_guard.py`)."""

from django.db import migrations

from ops.db_guard import red_line_operation


class Migration(migrations.Migration):
    dependencies = [("ops", "0004_red_line_triggers"), ("rounds", "0006_flow_ids")]

    operations = [
        red_line_operation(
            table="rounds_bet",
            what="a bet's money columns",
            columns=("stake_u", "payout_u", "side", "account_id"),
        )
    ]
