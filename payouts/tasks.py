"""Payout jobs: submit a payout (retried only for transient PSP errors) and detect stuck finance work."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from ops.workers import worker_run

logger = logging.getLogger(__name__)


def _max_retries() -> int:
    return int(settings.PAYOUT_MAX_RETRIES)


def _backoff_s(retries: int) -> int:
    base = int(settings.PAYOUT_RETRY_BACKOFF_S)
    return min(base * 2**retries, 3600)


@shared_task(bind=True, name="payouts.tasks.submit_payout", max_retries=None)
def submit_payout(self: Task, withdrawal_id: int, after_lease_of: str = "") -> str:
    """Submit one withdrawal's payout; a timeout or 5xx is retried with the same PSP idempotency key.

    Found the lease held (another caller is calling the PSP about it): a resume is scheduled at the lease's
    expiry, which acts only if that holder never gave it back (it died mid-call). `after_lease_of`: this run
    is such a resume (payouts.services.payout_submit).
    """
    from .services import IN_FLIGHT, _enqueue_payout_after_lease, payout_submit

    try:
        with worker_run("payout") as detail:
            run = payout_submit(withdrawal_id=withdrawal_id, after_lease_of=after_lease_of)
            detail.update(withdrawal_id=withdrawal_id, status=run.status, idempotency_key=run.idempotency_key)
            if run.status == IN_FLIGHT and run.lease_owner:
                _enqueue_payout_after_lease(withdrawal_id, run.lease_owner, run.lease_left_s)
                detail["resume_in_s"] = round(run.lease_left_s, 1)
            if run.retryable:
                detail["result"] = "failed"
    except (OperationalError, InterfaceError) as exc:  # the database is restarting: try again (same PSP key)
        raise self.retry(exc=exc, countdown=_backoff_s(self.request.retries)) from exc
    if run.retryable:
        if self.request.retries < _max_retries():
            raise self.retry(countdown=_backoff_s(self.request.retries))
        logger.error(
            "payout of withdrawal %s still %s after %s retries; it stays payout_submitted for the stuck-job detector",
            withdrawal_id,
            run.status,
            self.request.retries,
        )
    return run.status


@shared_task(name="payouts.tasks.detect_stuck_finance_jobs")
def detect_stuck_finance_jobs() -> int:
    """Log every stuck withdrawal or webhook event; a finding makes the run count as failed."""
    from ops.stuck import stuck_jobs

    with worker_run("stuck_jobs") as detail:
        findings = stuck_jobs()
        detail["findings"] = len(findings)
        if findings:
            detail["result"] = "failed"
            detail["items"] = [f.as_dict() for f in findings[:50]]
        for finding in findings:
            logger.error("stuck finance job: %s", finding.line())
    return len(findings)


@shared_task(name="payouts.tasks.requeue_payouts")
def requeue_payouts() -> int:
    """Queue the payout worker again for approved or unanswered payouts (after a freeze, a lost message)."""
    from .services import payouts_requeue

    with worker_run("payout_requeue") as detail:
        queued = payouts_requeue()
        detail["queued"] = queued[:100]
    return len(queued)


@shared_task(name="payouts.tasks.reconcile_payouts")
def reconcile_payouts() -> int:
    """Beat: ask the PSP about submitted payouts with no final answer, and apply what it says."""
    from .reconciliation import payouts_reconcile

    with worker_run("payout_reconcile") as detail:
        results = payouts_reconcile()
        detail["results"] = [r.line() for r in results[:50]]
        if any(r.answer == "error" for r in results):
            detail["result"] = "failed"
    return len(results)
