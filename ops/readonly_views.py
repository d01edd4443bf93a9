"""Read-only SQL views for the runbooks' own queries, and the guard that keeps them read-only.

PostgreSQL makes a simple one-table view updatable: an INSERT into it would write the table behind it.
`create_readonly_view` adds an INSTEAD OF trigger that refuses every write. Migrations of the apps that own
the tables create the views (`users` in accounts, `bets` in rounds).
"""

from __future__ import annotations

from typing import Any

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION readonly_view_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'view % is read-only: write through the application', TG_TABLE_NAME
        USING ERRCODE = 'read_only_sql_transaction';
END $$;
"""


def create_readonly_view(schema_editor: Any, *, name: str, select: str) -> None:
    """Create view `name` AS `select` and refuse INSERT, UPDATE and DELETE on it."""
    schema_editor.execute(f"CREATE VIEW {name} AS {select}")
    schema_editor.execute(REFUSE_FUNCTION, params=None)
    schema_editor.execute(
        f"CREATE TRIGGER {name}_readonly INSTEAD OF INSERT OR UPDATE OR DELETE ON {name} "
        "FOR EACH ROW EXECUTE FUNCTION readonly_view_refuse()"
    )


def drop_readonly_view(schema_editor: Any, *, name: str) -> None:
    schema_editor.execute(f"DROP VIEW IF EXISTS {name}")
