"""Leave room in ledger_account pages so a posting's balance UPDATE is a HOT update.

Every posting rewrites the balance row of each account it touches, and no index covers `balance_u`;
when the new row version fits on its page, PostgreSQL updates none of the table's four indexes. A
settlement updates every winner's account once in one transaction, so each row of a page may need
room for a second version: half of each page is left free (the table is small: one row per player
and currency). Applies to pages written from now on; `VACUUM FULL ledger_account` rewrites the
existing ones (PostgreSQL only).
"""

from django.db import migrations


def forward(apps, schema_editor):
    schema_editor.execute("ALTER TABLE ledger_account SET (fillfactor = 50)")


def backward(apps, schema_editor):
    schema_editor.execute("ALTER TABLE ledger_account RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0005_posting_functions")]
    operations = [migrations.RunPython(forward, backward)]
