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


@register_db_metrics
def payout_lease_metrics() -> Iterable[Metric]:
    """The payout leases (payouts/leases.py): held now, expired (holder died, not yet taken over), taken over.

    `payout_leases{state="held"|"expired"}` and `payout_lease_takeovers_total{provider}` (attempts that took
    over a dead caller's expired lease and called the PSP again with the same idempotency key).
    """
    from django.db.models.functions import Now

    from .models import PayoutAttempt, Withdrawal

    leases = GaugeMetricFamily("payout_leases", "Payout leases by state.", labels=["state"])
    leased = Withdrawal.objects.exclude(payout_lease_until=None)
    leases.add_metric(["held"], leased.filter(payout_lease_until__gt=Now()).count())
    leases.add_metric(["expired"], leased.filter(payout_lease_until__lte=Now()).count())
    yield leases

    takeovers = CounterMetricFamily(
        "payout_lease_takeovers", "PSP calls made after taking over an expired payout lease.", labels=["provider"]
    )
    counts = dict(
        PayoutAttempt.objects.exclude(took_over_from="")
        .values("provider")
        .annotate(n=Count("id"))
        .values_list("provider", "n")
    )
    from .providers import provider_names

    for provider in sorted({*provider_names(), *counts}):
        takeovers.add_metric([provider], counts.get(provider, 0))
    yield takeovers
