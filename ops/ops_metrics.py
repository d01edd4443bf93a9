"""Ops metrics read from the database at scrape time: worker runs."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, Metric

from .metrics import register_db_metrics


@register_db_metrics
def worker_run_metrics() -> Iterable[Metric]:
    """`worker_runs_total{worker,result}`, counted from the recorded runs."""
    from .models import WorkerRun

    family = CounterMetricFamily(
        "worker_runs", "Background worker runs by worker and result.", labels=["worker", "result"]
    )
    for worker, result, n in (
        WorkerRun.objects.values("worker", "result").annotate(n=Count("id")).values_list("worker", "result", "n")
    ):
        family.add_metric([worker, result], n)
    yield family
