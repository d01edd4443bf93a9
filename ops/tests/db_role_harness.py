"""The suite's connections run as the application role, as production's processes do.

Once the test database is migrated (by the owner: the URL's user), `setup_db_roles` grants the
application role (`settings.DB_APP_ROLE`) its privileges and `enable_app_role` makes every Django
connection opened afterwards, by the test or by any thread (live server, Celery worker threads),
switch to it with `SET SESSION AUTHORIZATION` (like `SET ROLE`, but `session_user` becomes the
application role too, as for a process that logged in as it: the deploy check reads both). Child processes get the application role as the user of their DATABASE_URL
(`ops.tests.processes.django_env`).

Two things only the owner does, kept here in the harness:
- pytest-django's flush between transactional tests (TRUNCATE): run with the owner's rights;
- a test that plants a fault the application role cannot write (a corrupt balance for `check_ledger`)
  does it inside `with db_owner() as cursor:` (the `db_owner` fixture of the root conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connection, connections
from django.db.backends.signals import connection_created

from ops.db_roles import app_role

_active = {"on": False}
_original_flush: dict[str, Callable[..., Any]] = {}


def app_role_active() -> bool:
    return _active["on"]


def _quoted_role() -> str:
    role = app_role()
    return '"' + role.replace('"', '""') + '"'


def _set_app_role(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _active["on"] and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET SESSION AUTHORIZATION {_quoted_role()}")


def enable_app_role() -> None:
    """From now on every new connection runs as the application role; open ones are closed first."""
    connections.close_all()
    _active["on"] = True
    connection_created.connect(_set_app_role, dispatch_uid="ops.tests.db_role_harness")
    ops_class = type(connection.ops)
    if "flush" not in _original_flush:
        _original_flush["flush"] = ops_class.execute_sql_flush

        def execute_sql_flush_as_owner(self: Any, sql_list: Any) -> None:
            with self.connection.cursor() as cursor:
                cursor.execute("RESET SESSION AUTHORIZATION")
            try:
                _original_flush["flush"](self, sql_list)
            finally:
                if _active["on"]:
                    with self.connection.cursor() as cursor:
                        cursor.execute(f"SET SESSION AUTHORIZATION {_quoted_role()}")

        ops_class.execute_sql_flush = execute_sql_flush_as_owner  # type: ignore[method-assign]


def disable_app_role() -> None:
    """Back to the owner for the test database's teardown (DROP DATABASE)."""
    _active["on"] = False
    connection_created.disconnect(dispatch_uid="ops.tests.db_role_harness")
    if "flush" in _original_flush:
        type(connection.ops).execute_sql_flush = _original_flush.pop("flush")  # type: ignore[method-assign]
    connections.close_all()


@contextmanager
def as_db_owner() -> Iterator[Any]:
    """A cursor on the test's own connection with the owner's rights, for planting faults; back after.

    Inside a test's transaction the RESET SESSION AUTHORIZATION is also undone by the test's rollback, so a statement
    that fails in here cannot leave the connection as the owner.
    """
    with connection.cursor() as cursor:
        cursor.execute("RESET SESSION AUTHORIZATION")
        try:
            yield cursor
        finally:
            if _active["on"]:
                try:
                    cursor.execute(f"SET SESSION AUTHORIZATION {_quoted_role()}")
                except DatabaseError:
                    # The test's transaction is aborted: its rollback restores the role set at connect.
                    if not connection.in_atomic_block:
                        raise
