"""Reads for the operator's console: the figures the runbooks check every morning and at 4 pm.

Every figure comes from the selector the commands and `/metrics` use (`tvl`, the manual-review queue,
`ops.stuck.stuck_jobs`, `round_current`), or from one grouped query over a bounded table: the charts
read deposits, withdrawals, rounds and payout attempts, never bets or ledger entries, so the number of
queries and the rows they touch do not grow with the number of bets (an OPEN round's pools so far are
the sums of its few `PoolStripe` rows, in the rounds' query: `rounds.pools.with_live_pools`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Min, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

CHART_DAYS = 30
SERIES = ("deposits", "withdrawals", "stakes", "fees")
WAIVER_HORIZON = timedelta(days=7)


@dataclass(frozen=True)
class RoundStatus:
    round: Any
    lock_in_s: int | None
    oracle: str
    oracle_deadline: datetime | None


@dataclass(frozen=True)
class DailySeries:
    """Per-day totals in minor units of one currency, oldest day first."""

    currency: str
    days: list[date]
    series: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    tvl: dict[str, Any]
    manual_review_count: int
    manual_review_total: dict[str, int]
    manual_review_oldest: datetime | None
    stuck: list[Any]
    current_round: RoundStatus | None
    switches: list[Any]
    last_reconciliation: Any
    waivers: list[Any]
    daily: dict[str, DailySeries]
    payout_outcomes: list[tuple[str, int]]
    pending_decisions: int = 0
    lockouts: list[Any] = field(default_factory=list)


def _days(today: date) -> list[date]:
    return [today - timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]


def _oracle_status(round_obj: Any, now: datetime) -> tuple[str, datetime | None]:
    from rounds.selectors import oracle_deadline_for

    deadline = oracle_deadline_for(round_obj=round_obj)
    if round_obj.status == "SETTLED":
        return f"settled {round_obj.result} at close {round_obj.close_price}", None
    if round_obj.status == "VOID":
        return f"void ({round_obj.void_reason or 'no reason'})", None
    if now < round_obj.close_at:
        return "waiting for the close", deadline
    if round_obj.oracle_attempts == 0:
        return "close passed; no oracle attempt yet", deadline
    error = f": {round_obj.oracle_last_error}" if round_obj.oracle_last_error else ""
    return f"{round_obj.oracle_attempts} attempt(s), no agreed price yet{error}", deadline


def current_round_status(*, now: datetime) -> RoundStatus | None:
    """Today's round (or the next open one) with its lock countdown and oracle status."""
    from rounds.errors import RoundNotFound
    from rounds.pools import pools_show
    from rounds.selectors import round_current

    try:
        round_obj = pools_show(round_obj=round_current())  # an OPEN round's pools: from its stripes
    except RoundNotFound:
        return None
    lock_in = int((round_obj.lock_at - now).total_seconds()) if round_obj.status == "OPEN" else None
    oracle, deadline = _oracle_status(round_obj, now)
    return RoundStatus(round=round_obj, lock_in_s=lock_in, oracle=oracle, oracle_deadline=deadline)


def daily_flows(*, today: date) -> dict[str, DailySeries]:
    """Deposits credited, withdrawals requested, stakes and house fees per UTC day for the last 30 days,
    per currency (only currencies that moved)."""
    from payouts.models import Withdrawal
    from rounds.models import Round
    from rounds.pools import pools_live, with_live_pools
    from webhooks.models import Deposit

    days = _days(today)
    start = datetime.combine(days[0], time.min, tzinfo=UTC)
    index = {day: i for i, day in enumerate(days)}
    out: dict[str, DailySeries] = {}

    def add(name: str, rows: Any) -> None:
        for day, currency, total in rows:
            if day not in index:
                continue
            if currency not in out:
                out[currency] = DailySeries(currency, days, {n: [0] * len(days) for n in SERIES})
            out[currency].series[name][index[day]] += int(total or 0)

    add(
        "deposits",
        Deposit.objects.filter(status=Deposit.Status.CREDITED, credited_at__gte=start)
        .annotate(day=TruncDate("credited_at", tzinfo=UTC))
        .values("day", "currency")
        .annotate(t=Sum("amount_u"))
        .values_list("day", "currency", "t"),
    )
    add(
        "withdrawals",
        Withdrawal.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "currency")
        .annotate(t=Sum("amount_u"))
        .values_list("day", "currency", "t"),
    )
    # Stakes and fees from the rounds' stored pools (stored at lock; an OPEN round's so far from its pool
    # stripes, annotated in the same query; bets are never summed here), by the round's day.
    for round_obj in with_live_pools(Round.objects.filter(code__gte=f"{days[0]:%Y%m%d}")).only(
        "code", "status", "currency", "up_pool_u", "down_pool_u", "up_bets", "down_bets", "fee_u"
    ):
        code, currency, fee = round_obj.code, round_obj.currency, round_obj.fee_u
        pools = pools_live(round_obj=round_obj)
        up, down = pools["up_pool_u"], pools["down_pool_u"]
        day = min(date(int(code[:4]), int(code[4:6]), int(code[6:])), today)  # a future round's stakes so far: today
        add("stakes", [(day, currency, up + down)])
        add("fees", [(day, currency, fee or 0)])
    return dict(sorted(out.items()))


def payout_outcome_rates(*, since: datetime) -> list[tuple[str, int]]:
    """Payout attempts by outcome since an instant (accepted, declined, ambiguous, ...), most frequent first."""
    from payouts.models import PayoutAttempt

    rows = (
        PayoutAttempt.objects.filter(started_at__gte=since)
        .values("outcome")
        .annotate(n=Count("id"))
        .order_by("-n", "outcome")
        .values_list("outcome", "n")
    )
    return [(outcome, n) for outcome, n in rows]


def dashboard(*, now: datetime | None = None) -> Dashboard:
    """Everything the console's home page shows, in a fixed number of queries."""
    from accounts.login_protection import current_lockouts
    from ledger.models import ReconciliationRun
    from ledger.selectors import tvl_by_currency
    from ops.models import Proposal, Switch, Waiver
    from ops.stuck import stuck_jobs
    from payouts.models import Withdrawal
    from rounds import clock as rounds_clock

    now = now or timezone.now()
    queue = Withdrawal.objects.filter(state=Withdrawal.State.PAYOUT_FAILED)
    by_currency = dict(queue.values("currency").annotate(t=Sum("amount_u")).values_list("currency", "t"))
    summary = queue.aggregate(n=Count("id"), oldest=Min("state_changed_at"))
    switches = {s.name: s for s in Switch.objects.all()}
    return Dashboard(
        now=now,
        tvl=tvl_by_currency(),
        manual_review_count=summary["n"],
        manual_review_total=by_currency,
        manual_review_oldest=summary["oldest"],
        stuck=stuck_jobs(now=now),
        # The round's countdown and oracle status on the rounds' time (shifted by the demo clock in development).
        current_round=current_round_status(now=rounds_clock.now()),
        switches=[(name, label, switches.get(name)) for name, label in Switch.Name.choices],
        last_reconciliation=ReconciliationRun.objects.order_by("-id").first(),
        waivers=list(
            Waiver.objects.filter(closed_at__isnull=True, deadline__lt=now + WAIVER_HORIZON).order_by("deadline")
        ),
        daily=daily_flows(today=now.astimezone(UTC).date()),
        payout_outcomes=payout_outcome_rates(since=now - timedelta(days=CHART_DAYS)),
        pending_decisions=Proposal.objects.filter(state=Proposal.State.PENDING).count(),
        lockouts=current_lockouts(now=now),
    )
