"""Drop the deposits' `*_like` indexes: six more index entries written by every deposit, read by no query.

Django adds a `varchar_pattern_ops` index beside the btree of every indexed CharField, for `LIKE 'x%'`.
Nothing filters these columns by prefix: the admin searches with `icontains` (`LIKE '%x%'`, which no
btree serves), the rest by equality, which the plain btree serves. A deposit is inserted and updated
once and its event likewise (a status change is never a HOT update: the status is indexed), so each
of these indexes cost two index writes per deposit on the deposits' hot path (bench/webhooks.py).

Locks: `DROP INDEX CONCURRENTLY` (so `atomic = False`) waits for the transactions using the table and
blocks no reader or writer; safe during trading hours. Backward: the same indexes, `CREATE INDEX CONCURRENTLY`.
"""

from django.db import migrations

INDEXES = (
    ("webhooks_deposit_flow_id_471d8fb2_like", "webhooks_deposit", "flow_id"),
    ("webhooks_deposit_psp_id_14c0bc59_like", "webhooks_deposit", "psp_id"),
    ("webhooks_deposit_psp_payment_reference_8694bb27_like", "webhooks_deposit", "psp_payment_reference"),
    ("webhooks_deposit_status_21bedc57_like", "webhooks_deposit", "status"),
    ("webhooks_webhookevent_reference_b52b343c_like", "webhooks_webhookevent", "reference"),
    ("webhooks_webhookevent_status_ca3d6ef8_like", "webhooks_webhookevent", "status"),
)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("webhooks", "0005_red_line_content")]

    operations = [
        migrations.RunSQL(
            sql=[f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name, _, _ in INDEXES],
            reverse_sql=[
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({column} varchar_pattern_ops)"
                for name, table, column in INDEXES
            ],
        )
    ]
