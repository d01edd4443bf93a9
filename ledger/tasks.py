"""Ledger jobs: the reconciliation worker."""

from __future__ import annotations

import logging

from celery import shared_task

from ops.workers import worker_run

logger = logging.getLogger(__name__)


@shared_task(name="ledger.tasks.reconcile_ledger")
def reconcile_ledger() -> int:
    """Check every invariant, record the run; a breach counts as a failed run and is logged."""
    from .reconciliation import reconciliation_run

    with worker_run("reconciliation") as detail:
        run, breaches = reconciliation_run()
        detail["run_id"] = run.pk
        detail["breaches"] = len(breaches)
        if breaches:
            detail["result"] = "failed"
            for breach in breaches:
                logger.error("ledger invariant breach: %s", breach)
    return len(breaches)
