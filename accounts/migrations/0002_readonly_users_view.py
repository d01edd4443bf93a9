"""The house manual's daily report counts `users`: a read-only view of the players (operators are not users).

No password hashes, no operators: id, public_id, email, display_name, is_active, created_at.
"""

from django.db import migrations

from ops.readonly_views import create_readonly_view, drop_readonly_view

SELECT = (
    "SELECT id, public_id, email, display_name, is_active, date_joined AS created_at "
    "FROM accounts_user WHERE is_staff = FALSE"
)


def forward(apps, schema_editor):
    create_readonly_view(schema_editor, name="users", select=SELECT)


def backward(apps, schema_editor):
    drop_readonly_view(schema_editor, name="users")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
