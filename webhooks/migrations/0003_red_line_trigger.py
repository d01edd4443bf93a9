"""Put a deposit's money columns behind the red line (the kernel's `backoffice_red_line()`, see `ops/db_guard.py`)."""

from django.db import migrations

from ops.db_guard import red_line_operation


class Migration(migrations.Migration):
    dependencies = [("ops", "0004_red_line_triggers"), ("webhooks", "0002_deposit_flow_id")]

    operations = [
        red_line_operation(
            table="webhooks_deposit",
            what="a deposit's money columns",
            columns=("amount_u", "currency", "refunded_u", "charged_back_u"),
        )
    ]
