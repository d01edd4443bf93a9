"""Re-create the red-line trigger with the setting tested in its WHEN (`ops.db_guard.red_line_trigger`).

The same guard; a service's update (a settlement's million payouts) calls no function per row.
"""

from django.db import migrations

from ops.db_guard import red_line_operation


class Migration(migrations.Migration):
    dependencies = [("payouts", "0006_red_line_trigger")]

    operations = [
        red_line_operation(
            table="payouts_withdrawal",
            what="a withdrawal's state and amount",
            columns=("state", "amount_u", "currency", "user_id"),
            recreate=True,
        )
    ]
