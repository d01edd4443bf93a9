"""Store each locked round's Merkle tree so an inclusion proof reads O(log n) hashes (see rounds/proofs.py).

Two new, empty tables: no lock on an existing table, safe during trading hours. On PostgreSQL the levels'
`hashes` column is stored EXTERNAL (out of line, uncompressed) so that `substr()` of one 32-byte hash
reads only the TOAST chunk that holds it. Rounds locked before this migration have no stored tree; their
proofs are computed from every leaf, as before (`rounds.selectors.bet_proof`).
"""

import django.db.models.deletion
import django.db.models.expressions
import django.db.models.functions.text
import django.db.models.lookups
from django.db import migrations, models


STORAGE = "ALTER TABLE rounds_merklelevel ALTER COLUMN hashes SET STORAGE {}"


def forward(apps, schema_editor):
    schema_editor.execute(STORAGE.format("EXTERNAL"))


def backward(apps, schema_editor):
    schema_editor.execute(STORAGE.format("EXTENDED"))


class Migration(migrations.Migration):
    dependencies = [
        ("rounds", "0007_red_line_trigger"),
    ]

    operations = [
        migrations.CreateModel(
            name="LeafPosition",
            fields=[
                (
                    "bet",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="leaf_position",
                        serialize=False,
                        to="rounds.bet",
                    ),
                ),
                ("position", models.PositiveIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="MerkleLevel",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "level",
                    models.PositiveSmallIntegerField(help_text="0 = the leaves; the last level is the root alone."),
                ),
                ("width", models.PositiveIntegerField(help_text="How many 32-byte hashes the level holds.")),
                ("hashes", models.BinaryField(help_text="The level's node hashes, 32 bytes each, left to right.")),
                (
                    "round",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="merkle_levels",
                        to="rounds.round",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("round", "level"), name="rounds_merklelevel_one_per_level"),
                    models.CheckConstraint(
                        condition=models.Q(("width__gt", 0)), name="rounds_merklelevel_width_positive"
                    ),
                    models.CheckConstraint(
                        condition=django.db.models.lookups.Exact(
                            django.db.models.functions.text.Length("hashes"),
                            django.db.models.expressions.CombinedExpression(models.F("width"), "*", models.Value(32)),
                        ),
                        name="rounds_merklelevel_width_matches",
                    ),
                ],
            },
        ),
        migrations.RunPython(forward, backward),
    ]
