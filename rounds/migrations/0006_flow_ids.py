"""Flow ids stored on bets and on a round's settlement (ops/tracing.py).

Bets older than the field keep the flow id their traces already carry (`bet:<bet_id>`); new bets get
`bet-<hex>`. A round's `settlement_flow_id` is set when its settlement starts; rounds already settled or
voided get `settlement:<code>`. Only the new columns are written: no money column, so the red-line
trigger is not involved and no balance changes.
"""

from django.db import migrations, models
from django.db.models import CharField, F, Value
from django.db.models.functions import Cast, Concat

import rounds.models


def fill(apps, schema_editor):
    Bet = apps.get_model("rounds", "Bet")
    Round = apps.get_model("rounds", "Round")
    Bet.objects.filter(flow_id__isnull=True).update(
        flow_id=Concat(Value("bet:"), Cast("bet_id", CharField()), output_field=CharField())
    )
    Round.objects.filter(status__in=["SETTLED", "VOID"], settlement_flow_id__isnull=True).update(
        settlement_flow_id=Concat(Value("settlement:"), F("code"), output_field=CharField())
    )


class Migration(migrations.Migration):
    dependencies = [("rounds", "0005_readonly_bets_view")]

    operations = [
        migrations.AddField("bet", "flow_id", models.CharField(max_length=200, null=True, editable=False)),
        migrations.AddField(
            "round", "settlement_flow_id",
            models.CharField(
                max_length=200, unique=True, null=True, blank=True, editable=False,
                help_text="The settlement's flow id, set when settlement starts (ops/tracing.py).",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            "bet", "flow_id",
            models.CharField(
                max_length=200, unique=True, editable=False, default=rounds.models.bet_flow_id,
                help_text="The money flow this record starts: on its spans, logs, tasks and PSP calls "
                          "(ops/tracing.py).",
            ),
        ),
    ]
