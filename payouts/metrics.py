"""Payout metrics read from the database at scrape time (right whichever process did the work)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ops.metrics import register_db_metrics

MANUAL_REVIEW_ACTIONS = ("confirm_sent", "refund_failed", "retry")


@register_db_metrics
def manual_review_metrics() -> Iterable[Metric]:
    """`payout_manual_review_queue_size` and `payout_manual_review_transitions_total{action}`."""
    from ops.models import AuditRecord

    from .models import Withdrawal

    queue = GaugeMetricFamily(
        "payout_manual_review_queue_size", "Withdrawals whose payout failed, waiting for manual review."
    )
    queue.add_metric([], Withdrawal.objects.filter(state=Withdrawal.State.PAYOUT_FAILED).count())
    yield queue

    transitions = CounterMetricFamily(
        "payout_manual_review_transitions",
        "Manual-review resolutions of failed payouts, by decision (from the audit log).",
        labels=["action"],
    )
    counts = dict(
        AuditRecord.objects.filter(
            object_type="payouts.withdrawal",
            action__in=[f"payouts.withdrawal.{a}" for a in MANUAL_REVIEW_ACTIONS],
        )
        .values("action")
        .annotate(n=Count("id"))
        .values_list("action", "n")
    )
    for action in MANUAL_REVIEW_ACTIONS:
        transitions.add_metric([action], counts.get(f"payouts.withdrawal.{action}", 0))
    yield transitions


@register_db_metrics
def payout_attempt_metrics() -> Iterable[Metric]:
    """`payout_attempts_total{provider,outcome}`: every PSP payout call by its outcome (the rollback trigger's base).

    outcome is accepted, declined, refused, ambiguous, error, or pending (in flight or interrupted).
    """
    from .models import PayoutAttempt

    attempts = CounterMetricFamily(
        "payout_attempts", "Payout calls to the PSPs, by provider and outcome.", labels=["provider", "outcome"]
    )
    counts = {
        (row["provider"], row["outcome"]): row["n"]
        for row in PayoutAttempt.objects.values("provider", "outcome").annotate(n=Count("id"))
    }
    from .providers import provider_names

    for provider in sorted({*provider_names(), *(p for p, _ in counts)}):
        for outcome in PayoutAttempt.Outcome.values:
            attempts.add_metric([provider, outcome], counts.get((provider, outcome), 0))
    yield attempts
