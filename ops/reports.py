"""The daily reconciliation report (the hypercare routine's daily check), as Markdown."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from ledger.currencies import CURRENCIES
from ledger.money import format_money_safe
from ledger.reconciliation import invariant_names, ledger_breaches
from ledger.selectors import currencies_in_use, house_settlement_fees, journal_flows, tvl
from ops.db_router import read_alias
from webhooks.accounts import clearing_balances

from .models import WorkerRun


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _withdrawal_states() -> list[tuple[str, str, int, int]]:
    """(state, currency, count, total) per state and currency: minor units of two currencies never add up."""
    from django.db.models import Count, Sum

    from payouts.models import Withdrawal

    rows = (
        Withdrawal.objects.values("state", "currency")
        .annotate(n=Count("id"), total=Sum("amount_u"))
        .order_by("state", "currency")
    )
    return [(r["state"], r["currency"], r["n"], r["total"] or 0) for r in rows]


def _worker_failures(day: date) -> list[tuple[str, int]]:
    from django.db.models import Count

    rows = (
        WorkerRun.objects.filter(result=WorkerRun.Result.FAILED, finished_at__date=day)
        .values("worker")
        .annotate(n=Count("id"))
        .order_by("worker")
    )
    return [(r["worker"], r["n"]) for r in rows]


def daily_reconciliation_report(*, day: date) -> tuple[str, bool]:
    """Render the report for one UTC day; return the Markdown and whether every invariant holds."""
    breaches = ledger_breaches()
    lines = [
        f"# Daily reconciliation report — {day:%Y-%m-%d} (UTC)",
        "",
        f"Generated {timezone.now():%Y-%m-%d %H:%M:%S} UTC.",
        "",
        "## 1. Ledger invariants",
        "",
    ]
    if breaches:
        lines.append(f"**FAIL** — {len(breaches)} breach(es). Freeze non-essential payouts and escalate.")
        lines.extend(f"- {b}" for b in breaches)
    else:
        lines.append(f"**PASS** — {len(invariant_names())} invariants hold: {', '.join(invariant_names())}.")
    lines += [
        "",
        "## 2. TVL",
        "",
        "| currency | locked | total cash | pending withdrawals | house |",
        "|---|---|---|---|---|",
    ]
    for code in currencies_in_use():
        t, cur = tvl(currency=code), CURRENCIES[code]
        lines.append(
            f"| {code} | {cur.format(t.locked_u)} | {cur.format(t.total_cash_u)} | "
            f"{cur.format(t.pending_withdrawals_u)} | {cur.format(t.house_u)} |"
        )
    lines += [
        "",
        "PSP clearing, per provider: its clearing account plus the stripes deposits debit (`webhooks.accounts`);",
        "negative is what the provider has paid in for us, net of what it paid out. Compare it with the PSP's",
        "own statement.",
        "",
        "| provider | currency | clearing |",
        "|---|---|---|",
    ]
    lines += [
        f"| {provider} | {code} | {format_money_safe(balance, code)} |"
        for (provider, code), balance in clearing_balances().items()
    ]
    lines += ["", "## 3. Money moved today", "", "| type | currency | journals | amount |", "|---|---|---|---|"]
    for journal_type, code, count, total in journal_flows(
        start=_day_bounds(day)[0], end=_day_bounds(day)[1], using=read_alias()
    ):
        lines.append(f"| {journal_type} | {code} | {count} | {CURRENCIES[code].format(total)} |")
    lines += ["", "## 4. House fees (settlements)", ""]
    fees = house_settlement_fees(start=_day_bounds(day)[0], end=_day_bounds(day)[1], using=read_alias())
    lines += [f"- {code}: {CURRENCIES[code].format(total)}" for code, total in fees] or ["- none"]
    lines += ["", "## 5. Withdrawals by state", "", "| state | currency | count | amount |", "|---|---|---|---|"]
    lines += [
        f"| {state} | {code} | {n} | {format_money_safe(total, code)} |"
        for state, code, n, total in _withdrawal_states()
    ]
    lines += ["", "## 6. Failed worker runs today", ""]
    lines += [f"- {worker}: {n}" for worker, n in _worker_failures(day)] or ["- none"]
    lines += ["", "## 7. Actions", "", "- [ ] One improvement or risk from this report opened as a ticket.", ""]
    return "\n".join(lines), not breaches


def parse_day(value: Any) -> date:
    """Parse YYYY-MM-DD."""
    return datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007 (a calendar day, no instant)
