"""Put a withdrawal's state and amount behind the red line (the kernel's `backoffice_red_line()`, see `ops/db_guard.py`)."""

from django.db import migrations

from ops.db_guard import red_line_operation


class Migration(migrations.Migration):
    dependencies = [("ops", "0004_red_line_triggers"), ("payouts", "0005_withdrawal_flow_id")]

    operations = [
        red_line_operation(
            table="payouts_withdrawal",
            what="a withdrawal's state and amount",
            columns=("state", "amount_u", "currency", "user_id"),
        )
    ]
