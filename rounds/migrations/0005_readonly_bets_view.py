"""The house manual's daily report reads `bets` (user_id, stake_u, created_at): a read-only view of rounds_bet."""

from django.db import migrations

from ops.readonly_views import create_readonly_view, drop_readonly_view

SELECT = (
    "SELECT b.id, b.bet_id, b.player_id AS user_id, b.round_id, r.code AS round_code, b.side, b.stake_u, "
    "b.payout_u, b.placed_at AS created_at "
    "FROM rounds_bet b JOIN rounds_round r ON r.id = b.round_id"
)


def forward(apps, schema_editor):
    create_readonly_view(schema_editor, name="bets", select=SELECT)


def backward(apps, schema_editor):
    drop_readonly_view(schema_editor, name="bets")


class Migration(migrations.Migration):
    dependencies = [("rounds", "0004_maker_checker")]
    operations = [migrations.RunPython(forward, backward)]
