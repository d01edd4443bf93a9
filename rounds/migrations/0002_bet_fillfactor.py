"""Leave room in rounds_bet pages so settlement's `UPDATE ... SET payout_u` is a HOT update.

Every bet row is updated exactly once (its payout), and no index covers `payout_u`; with half of
each page free the new row version stays on its page and no index is touched (PostgreSQL only).
"""

from django.db import migrations


def forward(apps, schema_editor):
    schema_editor.execute("ALTER TABLE rounds_bet SET (fillfactor = 50)")


def backward(apps, schema_editor):
    schema_editor.execute("ALTER TABLE rounds_bet RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("rounds", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
