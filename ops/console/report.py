"""Reads: the daily reconciliation report in the W1 layout, for the admin page and its download.

W1: date; invariants; deposits; withdrawals by state; payouts; round results; open risks with owners.
`daily_report(day=...)` gathers the figures (integers in minor units), `render_w1_markdown` writes them
for people, exactly (`ledger.money`). The command `daily_reconciliation_report` keeps its own layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.db.models import Count, Q, Sum
from django.utils import timezone

from ledger.money import format_money_safe

if TYPE_CHECKING:
    from rounds.models import Round

ON_CALL_FINANCE = "finance on-call"
ON_CALL_ENGINEER = "engineering on-call"


@dataclass(frozen=True)
class Risk:
    what: str
    owner: str
    due: str = ""


class CurrencyRow(TypedDict):
    """Rows of one currency: how many, and their total in minor units (None when the sum is over no row)."""

    currency: str
    n: int
    total_u: int | None


class DepositRow(CurrencyRow):
    provider: str
    status: str


class WithdrawalStateRow(CurrencyRow):
    state: str


class AttemptRow(TypedDict):
    provider: str
    outcome: str
    n: int


@dataclass(frozen=True)
class DailyReport:
    day: date
    generated_at: datetime
    invariant_names: list[str]
    breaches: list[str]
    deposits: list[DepositRow]
    withdrawals_by_state: list[WithdrawalStateRow]  # now
    withdrawals_requested: list[CurrencyRow]  # that day
    payout_attempts: list[AttemptRow]
    payouts_paid: list[CurrencyRow]  # paid that day
    rounds: list[Round]
    risks: list[Risk]

    @property
    def ok(self) -> bool:
        return not self.breaches


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def daily_report(*, day: date) -> DailyReport:
    """Gather the W1 report of one UTC day."""
    from ledger.reconciliation import invariant_names, ledger_breaches
    from ops.models import AuditRecord, Switch, Waiver
    from ops.stuck import stuck_jobs
    from payouts.models import PayoutAttempt, Withdrawal
    from rounds.models import Round
    from rounds.pools import pools_show, with_live_pools
    from webhooks.models import Deposit

    start, end = _bounds(day)
    now = timezone.now()
    breaches = [str(b) for b in ledger_breaches()]
    deposits = list(
        Deposit.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("provider", "currency", "status")
        .annotate(n=Count("id"), total_u=Sum("amount_u"))
        .order_by("provider", "currency", "status")
    )
    by_state = list(
        Withdrawal.objects.values("state", "currency")
        .annotate(n=Count("id"), total_u=Sum("amount_u"))
        .order_by("state", "currency")
    )
    requested = list(
        Withdrawal.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("currency")
        .annotate(n=Count("id"), total_u=Sum("amount_u"))
        .order_by("currency")
    )
    attempts = list(
        PayoutAttempt.objects.filter(started_at__gte=start, started_at__lt=end)
        .values("provider", "outcome")
        .annotate(n=Count("id"))
        .order_by("provider", "outcome")
    )
    paid_ids = AuditRecord.objects.filter(
        object_type="payouts.withdrawal", to_state=Withdrawal.State.PAID, created_at__gte=start, created_at__lt=end
    ).values("object_id")
    paid = list(
        Withdrawal.objects.filter(pk__in=[int(r["object_id"]) for r in paid_ids if r["object_id"].isdigit()])
        .values("currency")
        .annotate(n=Count("id"), total_u=Sum("amount_u"))
        .order_by("currency")
    )
    rounds = [  # an OPEN round's pools from its stripes (stored on the round at lock)
        pools_show(round_obj=round_obj)
        for round_obj in with_live_pools(Round.objects.all())
        .filter(Q(code=f"{day:%Y%m%d}") | Q(settled_at__gte=start, settled_at__lt=end))
        .order_by("code")
    ]

    risks = [Risk(f"ledger invariant breach: {b}", ON_CALL_FINANCE, "now") for b in breaches]
    queue = Withdrawal.objects.filter(state=Withdrawal.State.PAYOUT_FAILED).count()
    if queue:
        risks.append(Risk(f"{queue} withdrawal(s) in the manual-review queue", ON_CALL_FINANCE))
    risks += [Risk(f"stuck: {f.line()}", ON_CALL_FINANCE) for f in stuck_jobs(now=now)]
    risks += [
        Risk(f"switch {s.name} is on: {s.reason}", s.changed_by or ON_CALL_ENGINEER)
        for s in Switch.objects.filter(on=True).order_by("name")
    ]
    risks += [
        Risk(
            f"waiver {w.check_name} ({w.risk}, ticket {w.ticket})" + (" — ESCALATED" if w.escalated_at else ""),
            w.owner,
            f"{w.deadline:%Y-%m-%d %H:%M} UTC",
        )
        for w in Waiver.objects.filter(closed_at__isnull=True).order_by("deadline")
    ]
    return DailyReport(
        day=day,
        generated_at=now,
        invariant_names=invariant_names(),
        breaches=breaches,
        deposits=[
            DepositRow(
                provider=r["provider"], currency=r["currency"], status=r["status"], n=r["n"], total_u=r["total_u"]
            )
            for r in deposits
        ],
        withdrawals_by_state=by_state,
        withdrawals_requested=requested,
        payout_attempts=[AttemptRow(provider=r["provider"], outcome=r["outcome"], n=r["n"]) for r in attempts],
        payouts_paid=paid,
        rounds=rounds,
        risks=risks,
    )


def _money(row: CurrencyRow) -> str:
    return format_money_safe(row["total_u"] or 0, row["currency"])


def render_w1_markdown(report: DailyReport) -> str:
    """Write the report in the W1 layout (Markdown)."""
    r = report
    lines = [
        f"# W1 report — {r.day:%Y-%m-%d} (UTC)",
        "",
        f"Generated {r.generated_at:%Y-%m-%d %H:%M:%S} UTC.",
        "",
        "## 1. Date",
        "",
        f"{r.day:%Y-%m-%d}",
        "",
        "## 2. Invariants",
        "",
    ]
    if r.breaches:
        lines.append(f"**FAIL** — {len(r.breaches)} breach(es). Freeze non-essential payouts and escalate.")
        lines += [f"- {b}" for b in r.breaches]
    else:
        lines.append(f"**PASS** — {len(r.invariant_names)} invariants hold: {', '.join(r.invariant_names)}.")
    lines += ["", "## 3. Deposits", "", "| provider | currency | status | count | amount |", "|---|---|---|---|---|"]
    lines += [f"| {d['provider']} | {d['currency']} | {d['status']} | {d['n']} | {_money(d)} |" for d in r.deposits]
    if not r.deposits:
        lines.append("| — | — | — | 0 | — |")
    lines += [
        "",
        "## 4. Withdrawals by state",
        "",
        "Requested this day: "
        + (", ".join(f"{w['n']} ({_money(w)})" for w in r.withdrawals_requested) or "none")
        + ".",
        "",
        "| state (now) | currency | count | amount |",
        "|---|---|---|---|",
    ]
    lines += [f"| {w['state']} | {w['currency']} | {w['n']} | {_money(w)} |" for w in r.withdrawals_by_state]
    lines += [
        "",
        "## 5. Payouts",
        "",
        "Paid this day: " + (", ".join(f"{p['n']} ({_money(p)})" for p in r.payouts_paid) or "none") + ".",
        "",
        "| provider | outcome | attempts |",
        "|---|---|---|",
    ]
    lines += [f"| {a['provider']} | {a['outcome']} | {a['n']} |" for a in r.payout_attempts]
    lines += [
        "",
        "## 6. Round results",
        "",
        "| round | status | result | up pool | down pool | fee | breakage | winners |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rd in r.rounds:
        c = rd.currency
        lines.append(
            f"| {rd.code} | {rd.status} | {rd.result or rd.void_reason or '—'} | "
            f"{format_money_safe(rd.up_pool_u, c)} | {format_money_safe(rd.down_pool_u, c)} | "
            f"{format_money_safe(rd.fee_u, c)} | {format_money_safe(rd.breakage_u, c)} | "
            f"{'—' if rd.winners is None else rd.winners} |"
        )
    lines += ["", "## 7. Open risks (owner)", ""]
    lines += [
        f"- [ ] {risk.what} — owner: {risk.owner}" + (f", due {risk.due}" if risk.due else "") for risk in r.risks
    ]
    if not r.risks:
        lines.append("- none open")
    lines += ["- [ ] One improvement or risk from this report opened as a ticket — owner: the reader.", ""]
    return "\n".join(lines)
