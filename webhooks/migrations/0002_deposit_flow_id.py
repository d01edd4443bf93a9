"""A deposit's flow id, stored on it (ops/tracing.py).

Rows older than the field keep the flow id their traces already carry (`deposit:<provider>:<reference>`);
new rows get `dep-<hex>`. Only the new column is written: no money column, so the red-line trigger is not
involved and no balance changes.
"""

from django.db import migrations, models
from django.db.models import CharField, F, Value
from django.db.models.functions import Concat

import webhooks.models


def fill(apps, schema_editor):
    Deposit = apps.get_model("webhooks", "Deposit")
    Deposit.objects.filter(flow_id__isnull=True).update(
        flow_id=Concat(Value("deposit:"), F("provider"), Value(":"), F("reference"), output_field=CharField())
    )


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0001_initial")]

    operations = [
        migrations.AddField("deposit", "flow_id", models.CharField(max_length=200, null=True, editable=False)),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            "deposit", "flow_id",
            models.CharField(
                max_length=200, unique=True, editable=False, default=webhooks.models.deposit_flow_id,
                help_text="The money flow this record starts: on its spans, logs, tasks and PSP calls "
                          "(ops/tracing.py).",
            ),
        ),
    ]
