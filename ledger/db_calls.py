"""The posting functions' calls, each one statement on Django's connection but not through Django's cursor.

Why: a single posting is one call of `ledger_post`, whose server cost equals a pgbench TPC-B transaction;
through Django's cursor the client paid as much again in Python (Django's cursor wrapper, and psycopg's
client-side binding, which quotes every parameter into the SQL text). On a machine whose CPUs the
clients share with the server, that Python is throughput lost (`bench/ledger.py`, `--profile` for the
client's microseconds per transfer). `posting_rows` runs the call on a psycopg cursor of
`connection.connection` with server-side binding, prepared once per connection.

Prepared statements (`settings.LEDGER_PREPARED_STATEMENTS`): psycopg's `prepare=True` makes a
protocol-level named statement, parsed and planned once per connection, then only bound and executed
(Django leaves psycopg's `prepare_threshold` at None, which prepares nothing: the first prepared call
sets it to `ONLY_WHEN_ASKED`).
`None` (the default) prepares unless the database entry sets `DISABLE_SERVER_SIDE_CURSORS`, this
project's sign of a transaction-mode pooler in front (docs/ops/scaling.md); `True` or `False` decides
outright. PgBouncer >= 1.21 with `max_prepared_statements` > 0 keeps protocol-level prepared statements
working in transaction mode, so set `True` there; an older pooler, or one with it at 0, needs `False`
(each server connection would otherwise meet a statement name it never saw). Unprepared, the call is
still server-bound: one extended-protocol statement, which any pooler passes. A migration that changes
a posting function's result columns needs the processes restarted (a prepared call keeps the old shape).

What Django's cursor does that this keeps:
- the connection: opened, or re-opened after a failed health check, as `connection.cursor()` would;
- a transaction marked for rollback refuses the call (TransactionManagementError), as Django's does;
- errors: psycopg's come out as Django's (`IntegrityError`, `DataError`, ...) through
  `connection.wrap_database_errors`, and an error raised inside `transaction.atomic()` leaves through
  it, which rolls back its savepoint or marks the transaction for rollback, exactly as before;
- the query metrics of django-prometheus (`django_db_execute_total`, `django_db_query_duration_seconds`,
  `django_db_errors_total`), counted here with the same labels.

When something at Django's level watches the queries, the call takes Django's own cursor, so the
watcher sees it: query logging (`DEBUG`, `assertNumQueries`, `CaptureQueriesContext`), an
`execute_wrapper`, or tracing (`ops.tracing`: OpenTelemetry's psycopg instrumentation wraps the
connection's cursors, one span per query). Nothing in the project installs an execute wrapper for good;
`bench/settlement.py` times its own run with one.
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django_prometheus.db import errors_total, execute_total, query_duration_seconds
from django_prometheus.db.common import DatabaseWrapperMixin

from ops.tracing import tracing_on

# psycopg prepares nothing on a connection whose `prepare_threshold` is None, as Django leaves it unless
# OPTIONS set one; this one lets an explicit `prepare=True` through and no automatic preparation (Django's
# own cursors bind client-side and never prepare anyway).
ONLY_WHEN_ASKED = 2**31 - 1
CURSOR_ATTRIBUTE = "_ledger_posting_cursor"  # on Django's connection (one per thread): its cursor, reused


def posting_rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one call of a posting function (its SQL is the ledger's own, never a caller's); return its rows."""
    db = connections[DEFAULT_DB_ALIAS]  # the one the services' `connection` stands for, looked up once
    if db.queries_logged or db.execute_wrappers or tracing_on():
        with db.cursor() as watched:
            watched.execute(sql, params)
            return watched.fetchall()
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    prepare = prepared_statements(db)
    cursor = _posting_cursor(db, prepare=prepare)
    started = time.perf_counter()
    with db.wrap_database_errors:
        try:
            cursor.execute(sql, params, prepare=prepare)
            rows = cursor.fetchall()
        except Exception as exc:
            _count(db, started, error=exc)
            raise
    _count(db, started, error=None)
    return rows


def _posting_cursor(db: BaseDatabaseWrapper, *, prepare: bool) -> psycopg.Cursor[Any]:
    """The server-binding cursor of this connection, made once per connection (a new one builds its loaders)."""
    raw = db.connection
    if prepare and raw.prepare_threshold is None:
        raw.prepare_threshold = ONLY_WHEN_ASKED
    cursor: psycopg.Cursor[Any] | None = getattr(db, CURSOR_ATTRIBUTE, None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = psycopg.Cursor(raw)
        setattr(db, CURSOR_ATTRIBUTE, cursor)
    return cursor


def int_array(values: Iterable[int]) -> str:
    """Return PostgreSQL's text form of a one-dimensional array of integers (`{1,-2,3}`).

    Passed as a parameter, never spliced into SQL, and cast by the statement (`%s::bigint[]`): psycopg's
    list adapter inspects every element to choose the array's type, which costs a single posting more
    than the rest of its parameters; the statement's cast already says the type. A value that is not an
    integer raises TypeError (`operator.index`).
    """
    return "{" + ",".join(map(str, map(operator.index, values))) + "}"


def text_array(values: Iterable[str]) -> str:
    """Return PostgreSQL's text form of a one-dimensional array of strings, each quoted (`{"USDC","EUR"}`)."""
    return "{" + ",".join('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values) + "}"


def prepared_statements(db: BaseDatabaseWrapper) -> bool:
    """Whether posting calls are prepared on this database (the module's docstring says when)."""
    chosen = settings.LEDGER_PREPARED_STATEMENTS
    if chosen is None:
        return not db.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS", False)
    return bool(chosen)


def _count(db: BaseDatabaseWrapper, started: float, *, error: Exception | None) -> None:
    """Count the call as django-prometheus counts a statement on its cursors (same metrics, same labels)."""
    if not isinstance(db, DatabaseWrapperMixin):
        return
    executed, duration = _metrics(db.alias, db.vendor)
    executed.inc()
    duration.observe(time.perf_counter() - started)
    if error is not None:
        errors_total.labels(db.alias, db.vendor, type(error).__name__).inc()


@functools.cache
def _metrics(alias: str, vendor: str) -> tuple[Any, Any]:
    """The labelled execute counter and duration histogram of a database (looked up once)."""
    return execute_total.labels(alias, vendor), query_duration_seconds.labels(alias, vendor)
