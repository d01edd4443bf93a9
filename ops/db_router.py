"""The read replica: which reads may go to `DB_READONLY_ENDPOINT`, and the fall-back to the primary.

Reads go to the primary unless code asks for the replica with `read_from_replica()`; the reports (daily
reconciliation, W1), `tvl`, the metrics gauges read at scrape time and the admin list pages do. Even then a
read stays on the primary when:
- it happens inside a transaction on the primary (a money transaction reads what it locks and writes);
- the replica is unreachable, or its replay lags more than `DB_READONLY_MAX_LAG_S` seconds behind what it
  has received. The state is checked at most every `DB_READONLY_CHECK_INTERVAL_S` seconds per process;
  each read that falls back counts in `db_replica_fallback_total{reason}` (reason: unreachable, lag) and the
  last lag seen is `db_replica_lag_seconds`.
Every write goes to the primary, and migrations run only there. Without `DB_READONLY_ENDPOINT` there is no
`replica` alias and everything reads the primary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

REPLICA = "replica"
LAG_SQL = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)

REPLICA_FALLBACK = Counter(
    "db_replica_fallback_total",
    "Reads meant for the read replica that went to the primary, by reason.",
    ["reason"],
)
REPLICA_LAG = Gauge("db_replica_lag_seconds", "Replay lag of the read replica at its last check (seconds).")

_use_replica: ContextVar[bool] = ContextVar("use_replica", default=False)


@contextmanager
def read_from_replica() -> Iterator[None]:
    """Let reads in this block go to the replica (when it is configured, healthy and no transaction is open)."""
    token = _use_replica.set(True)
    try:
        yield
    finally:
        _use_replica.reset(token)


class _ReplicaState:
    """The replica's last known health, shared by the threads of one process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_at = float("-inf")
        self.problem: str | None = None

    def problem_now(self) -> str | None:
        """None when the replica may be read, else the reason it may not (checked at most every interval)."""
        interval = float(settings.DB_READONLY_CHECK_INTERVAL_S)
        with self.lock:
            if time.monotonic() - self.checked_at >= interval:
                self.problem = self._check()
                self.checked_at = time.monotonic()
            return self.problem

    def _check(self) -> str | None:
        try:
            with connections[REPLICA].cursor() as cursor:
                cursor.execute(LAG_SQL)
                (lag,) = cursor.fetchone()
        except DatabaseError as exc:
            logger.warning("read replica unreachable, reading the primary: %s", str(exc).strip()[:200])
            connections[REPLICA].close()
            return "unreachable"
        if lag is None:
            logger.error("DB_READONLY_ENDPOINT is not a standby (pg_is_in_recovery() is false); reading the primary")
            return "not_a_replica"
        REPLICA_LAG.set(float(lag))
        max_lag = float(settings.DB_READONLY_MAX_LAG_S)
        if float(lag) > max_lag:
            logger.warning("read replica lags %.1f s (> %.1f s), reading the primary", float(lag), max_lag)
            return "lag"
        return None

    def reset(self) -> None:
        with self.lock:
            self.checked_at = float("-inf")
            self.problem = None


replica_state = _ReplicaState()


class ReplicaRouter:
    """Route reads asked for with `read_from_replica()` to the replica when it is safe; everything else primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if not _use_replica.get() or REPLICA not in settings.DATABASES:
            return None
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return None
        problem = replica_state.problem_now()
        if problem is not None:
            REPLICA_FALLBACK.labels(reason=problem).inc()
            return None
        return REPLICA

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db != REPLICA


class AdminListsOnReplicaMiddleware:
    """Serve the admin's list pages (GET changelists) from the replica, rendered inside the block."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_view(self, request: Any, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any) -> Any:
        match = getattr(request, "resolver_match", None)
        if (
            request.method != "GET"
            or match is None
            or match.namespace != "admin"
            or not str(match.url_name).endswith("_changelist")
        ):
            return None
        with read_from_replica():
            response = view_func(request, *view_args, **view_kwargs)
            if hasattr(response, "render") and callable(response.render):
                response.render()
        return response


def read_alias() -> str:
    """The alias a raw SQL read should use here (the router's decision, for `connections[...]`)."""
    return ReplicaRouter().db_for_read(None) or DEFAULT_DB_ALIAS
