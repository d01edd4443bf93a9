"""Webhook metrics read from the database at scrape time: `webhook_events_total{provider,status}`."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ops.metrics import register_db_metrics


@register_db_metrics
def webhook_event_metrics() -> Iterable[Metric]:
    """Stored webhook events by provider and current status (failed and flagged need an operator)."""
    from .models import Deposit, WebhookEvent

    events = CounterMetricFamily(
        "webhook_events", "PSP webhook events stored, by provider and current status.", labels=["provider", "status"]
    )
    counts = {
        (provider, status): n
        for provider, status, n in WebhookEvent.objects.values("provider", "status")
        .annotate(n=Count("id"))
        .values_list("provider", "status", "n")
    }
    for provider in sorted({p for p, _ in counts} | {"stripe", "adyen", "custody"}):
        for status in WebhookEvent.Status.values:
            events.add_metric([provider, status], counts.get((provider, status), 0))
    yield events

    deposits = GaugeMetricFamily("deposits", "Deposits by provider and status.", labels=["provider", "status"])
    for provider, status, n in (
        Deposit.objects.values("provider", "status").annotate(n=Count("id")).values_list("provider", "status", "n")
    ):
        deposits.add_metric([provider, status], n)
    yield deposits
