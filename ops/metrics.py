"""Prometheus metrics with the on-call runbook's names and labels.

Counters and histograms that live in the web process are plain prometheus_client objects. Figures
that belong to the database (queue sizes, worker runs, ledger breaches, TVL) are read at scrape time
by `DatabaseCollector`, so they are right whichever process (web, worker, beat) did the work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by method, route pattern and status.",
    ["method", "path", "status"],
)
IDEMPOTENCY_EVENTS = Counter(
    "idempotency_events_total",
    "Idempotency-Key outcomes: reserved, replayed, mismatch, in_progress, completed, released, recovered "
    "(a dead request's key run again), superseded, reserve_error, finalize_error.",
    ["outcome"],
)

CollectFn = Callable[[], Iterable[Metric]]
_collectors: list[CollectFn] = []


def register_db_metrics(fn: CollectFn) -> CollectFn:
    """Register a function that yields metric families read from the database at scrape time."""
    _collectors.append(fn)
    return fn


class DatabaseCollector(Collector):
    """Yield every registered database-backed metric family; a failing one is logged and skipped."""

    def describe(self) -> Iterable[Metric]:
        """Describe nothing up front, so registering does not query the database."""
        return []

    def collect(self) -> Iterable[Metric]:
        from ops.db_router import read_from_replica

        for fn in _collectors:
            try:
                with read_from_replica():  # gauges are reports: the replica serves them when it is healthy
                    families = list(fn())
                yield from families
            except Exception:  # a scrape must not fail because one figure could not be read
                logger.exception("metrics collector %s failed", getattr(fn, "__name__", fn))


_installed = False


def install_database_collector() -> None:
    """Register the database collector with the default registry once."""
    global _installed
    if not _installed:
        REGISTRY.register(DatabaseCollector())
        _installed = True
