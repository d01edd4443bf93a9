"""Betting metrics read from the database at scrape time (`betting_*`, `round_*`).

Settlement durations come from the rounds (`settlement_duration_s`, stored by `settlement_apply` in the settling
transaction), so /metrics shows every settlement whichever process made it (the beat task in a worker,
`settle_round`, an approved forced result, the bench): `round_settlement_duration_seconds` is a histogram over
every settled round (one observation per settlement), `round_last_settlement_duration_seconds` the recent rounds'.
A histogram kept in the settling process's memory would stay at count 0 on the web process that is scraped.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, Q, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ops.metrics import register_db_metrics

from .domain.pool import VoidReason

RECENT_ROUNDS = 10


@register_db_metrics
def betting_metrics() -> Iterable[Metric]:
    """Stakes of unsettled rounds by side, bets by side, fees and breakage collected."""
    from .models import Bet, Round

    stakes = GaugeMetricFamily(
        "betting_stakes_u", "Stakes in unsettled rounds by side (minor units).", labels=["side", "currency"]
    )
    open_stakes = {
        (side, currency): total
        for side, currency, total in Bet.objects.filter(round__status__in=Round.UNSETTLED)
        .values("side", "round__currency")
        .annotate(t=Sum("stake_u"))
        .values_list("side", "round__currency", "t")
    }
    for side in ("UP", "DOWN"):
        currencies = {c for (_, c) in open_stakes} or {settings.ROUND_CURRENCY}
        for currency in sorted(currencies):
            stakes.add_metric([side, currency], open_stakes.get((side, currency), 0) or 0)
    yield stakes

    bets = CounterMetricFamily("betting_bets", "Bets accepted, by side (all rounds).", labels=["side"])
    counts = dict(Bet.objects.values("side").annotate(n=Count("id")).values_list("side", "n"))
    for side in ("UP", "DOWN"):
        bets.add_metric([side], counts.get(side, 0))
    yield bets

    fees = CounterMetricFamily("betting_fees_u", "House fees from settled rounds (minor units).", labels=["currency"])
    breakage = CounterMetricFamily(
        "betting_breakage_u", "Breakage kept by the house from settled rounds (minor units).", labels=["currency"]
    )
    for currency, fee, brk in (
        Round.objects.filter(status=Round.Status.SETTLED)
        .values("currency")
        .annotate(f=Sum("fee_u"), b=Sum("breakage_u"))
        .values_list("currency", "f", "b")
    ):
        fees.add_metric([currency], fee or 0)
        breakage.add_metric([currency], brk or 0)
    yield fees
    yield breakage


@register_db_metrics
def round_metrics() -> Iterable[Metric]:
    """`round_status{code,status}` (1 for the current status) and last settlement durations."""
    from .models import Round

    status = GaugeMetricFamily("round_status", "Status of recent rounds (1 = current).", labels=["code", "status"])
    duration = GaugeMetricFamily(
        "round_last_settlement_duration_seconds", "Duration of each recent round's settlement.", labels=["code"]
    )
    for code, current, seconds in Round.objects.order_by("-code").values_list(
        "code", "status", "settlement_duration_s"
    )[:RECENT_ROUNDS]:
        for value in Round.Status.values:
            status.add_metric([code, value], 1 if value == current else 0)
        if seconds is not None:
            duration.add_metric([code], seconds)
    yield status
    yield duration
    yield settlement_duration_histogram()

    voids = CounterMetricFamily(
        "round_voids", "Rounds voided, by reason (CANCELLED = an operator's emergency stop).", labels=["reason"]
    )
    counts = dict(
        Round.objects.filter(status=Round.Status.VOID)
        .values("void_reason")
        .annotate(n=Count("id"))
        .values_list("void_reason", "n")
    )
    for reason in VoidReason:
        voids.add_metric([reason.value], counts.get(reason.value, 0))
    yield voids


def settlement_duration_histogram() -> HistogramMetricFamily:
    """`round_settlement_duration_seconds`: every settlement's duration, bucketed in one query over the rounds."""
    from .models import Round
    from .settlement import SETTLEMENT_DURATION_BUCKETS

    settled = Round.objects.filter(settlement_duration_s__isnull=False)
    figures = settled.aggregate(
        count=Count("id"),
        total=Sum("settlement_duration_s"),
        **{
            f"le{i}": Count("id", filter=Q(settlement_duration_s__lte=bound))
            for i, bound in enumerate(SETTLEMENT_DURATION_BUCKETS)
        },
    )
    buckets = [(str(float(bound)), figures[f"le{i}"]) for i, bound in enumerate(SETTLEMENT_DURATION_BUCKETS)]
    return HistogramMetricFamily(
        "round_settlement_duration_seconds",
        "Time to settle a round (the set-based SQL transaction), seconds; one observation per settled round.",
        buckets=[*buckets, ("+Inf", figures["count"])],
        sum_value=figures["total"] or 0.0,
    )
