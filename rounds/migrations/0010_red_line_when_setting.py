"""Re-create the red-line trigger with the setting tested in its WHEN (`ops.db_guard.red_line_trigger`).

The same guard; a service's update (a settlement's million payouts) calls no function per row.
"""

from django.db import migrations

from ops.db_guard import red_line_operation


class Migration(migrations.Migration):
    dependencies = [("rounds", "0009_pool_stripes")]

    operations = [
        red_line_operation(
            table="rounds_bet",
            what="a bet's money columns",
            columns=("stake_u", "payout_u", "side", "account_id"),
            recreate=True,
        )
    ]
