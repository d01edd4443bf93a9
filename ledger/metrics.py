"""Ledger metrics read from the database at scrape time: imbalance and TVL."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ops.metrics import register_db_metrics


@register_db_metrics
def ledger_imbalance_metrics() -> Iterable[Metric]:
    """`ledger_imbalance_total{currency}`: invariant breaches found by reconciliation runs."""
    from .currencies import CURRENCIES
    from .models import LedgerBreach

    family = CounterMetricFamily(
        "ledger_imbalance", "Ledger invariant breaches found by reconciliation, by currency.", labels=["currency"]
    )
    counts = dict(LedgerBreach.objects.values("currency").annotate(n=Count("id")).values_list("currency", "n"))
    for currency in sorted(set(CURRENCIES) | set(counts)):
        family.add_metric([currency], counts.get(currency, 0))
    yield family


@register_db_metrics
def tvl_metrics() -> Iterable[Metric]:
    """`tvl_*_u{currency}`: the house manual's TVL parts, from stored balances."""
    from .models import Account

    names = {
        Account.Kind.ROUND_POOL: ("tvl_locked_u", "Stakes in unsettled round pools (minor units)."),
        Account.Kind.USER_AVAILABLE: ("tvl_total_cash_u", "Players' available balances (minor units)."),
        Account.Kind.USER_HELD: ("tvl_pending_withdrawals_u", "Funds held for withdrawals (minor units)."),
        Account.Kind.HOUSE: ("tvl_house_u", "House balance: fees and breakage (minor units)."),
    }
    # Keyed by the kind's stored value: the rows below carry plain strings.
    families: dict[str, GaugeMetricFamily] = {
        kind: GaugeMetricFamily(name, doc, labels=["currency"]) for kind, (name, doc) in names.items()
    }
    for kind, currency, total in (
        Account.objects.values("kind", "currency").annotate(t=Sum("balance_u")).values_list("kind", "currency", "t")
    ):
        if kind in families:
            families[kind].add_metric([currency], total or 0)
    yield from families.values()
