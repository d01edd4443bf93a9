"""A withdrawal's flow id, stored on it (ops/tracing.py).

Rows older than the field keep the flow id their traces already carry (`withdrawal:<id>`); new rows get
`wd-<hex>`. Only the new column is written: no money column, so the red-line trigger is not involved and no
balance changes.
"""

from django.db import migrations, models
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat

import payouts.models


def fill(apps, schema_editor):
    Withdrawal = apps.get_model("payouts", "Withdrawal")
    Withdrawal.objects.filter(flow_id__isnull=True).update(
        flow_id=Concat(Value("withdrawal:"), Cast("id", CharField()), output_field=CharField())
    )


class Migration(migrations.Migration):
    dependencies = [("payouts", "0004_payout_status_check")]

    operations = [
        migrations.AddField("withdrawal", "flow_id", models.CharField(max_length=200, null=True, editable=False)),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            "withdrawal", "flow_id",
            models.CharField(
                max_length=200, unique=True, editable=False, default=payouts.models.withdrawal_flow_id,
                help_text="The money flow this record starts: on its spans, logs, tasks and PSP calls "
                          "(ops/tracing.py).",
            ),
        ),
    ]
