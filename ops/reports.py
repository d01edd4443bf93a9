"""The daily reconciliation report (the hypercare routine's daily check), as Markdown."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from config.db_router import read_alias
from ledger.currencies import CURRENCIES
from ledger.reconciliation import invariant_names, ledger_breaches
from ledger.selectors import currencies_in_use, tvl

from .models import WorkerRun


def _flows(day: date) -> list[tuple[str, str, int, int]]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT j.type, e.currency, COUNT(DISTINCT j.id), SUM(CASE WHEN e.amount_u > 0 THEN e.amount_u ELSE 0 END) "
            "FROM ledger_journal j JOIN ledger_entry e ON e.journal_id = j.id "
            "WHERE j.created_at >= %s AND j.created_at < %s GROUP BY j.type, e.currency ORDER BY j.type, e.currency",
            [start, end],
        )
        return [(t, c, int(n), int(total or 0)) for t, c, n, total in cursor.fetchall()]


def _house_fees(day: date) -> list[tuple[str, int]]:
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT currency, SUM(amount_u) FROM ledger_entries WHERE account = 'house' AND ref_type = 'settlement' "
            "AND ts >= %s AND ts < %s GROUP BY currency",
            [datetime.combine(day, time.min, tzinfo=UTC),
             datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)],
        )
        return [(c, int(total)) for c, total in cursor.fetchall()]


def _withdrawal_states() -> list[tuple[str, int, int]]:
    from django.db.models import Count, Sum

    from payouts.models import Withdrawal

    rows = Withdrawal.objects.values("state").annotate(n=Count("id"), total=Sum("amount_u")).order_by("state")
    return [(r["state"], r["n"], r["total"] or 0) for r in rows]


def _worker_failures(day: date) -> list[tuple[str, int]]:
    from django.db.models import Count

    rows = (WorkerRun.objects.filter(result=WorkerRun.Result.FAILED, finished_at__date=day)
            .values("worker").annotate(n=Count("id")).order_by("worker"))
    return [(r["worker"], r["n"]) for r in rows]


def daily_reconciliation_report(*, day: date) -> tuple[str, bool]:
    """Render the report for one UTC day; return the Markdown and whether every invariant holds."""
    breaches = ledger_breaches()
    lines = [f"# Daily reconciliation report — {day:%Y-%m-%d} (UTC)", "",
             f"Generated {timezone.now():%Y-%m-%d %H:%M:%S} UTC.", "", "## 1. Ledger invariants", ""]
    if breaches:
        lines.append(f"**FAIL** — {len(breaches)} breach(es). Freeze non-essential payouts and escalate.")
        lines.extend(f"- {b}" for b in breaches)
    else:
        lines.append(f"**PASS** — {len(invariant_names())} invariants hold: {', '.join(invariant_names())}.")
    lines += ["", "## 2. TVL", "", "| currency | locked | total cash | pending withdrawals | house |", "|---|---|---|---|---|"]
    for code in currencies_in_use():
        t, cur = tvl(currency=code), CURRENCIES[code]
        lines.append(f"| {code} | {cur.format(t.locked_u)} | {cur.format(t.total_cash_u)} | "
                     f"{cur.format(t.pending_withdrawals_u)} | {cur.format(t.house_u)} |")
    lines += ["", "## 3. Money moved today", "", "| type | currency | journals | amount |", "|---|---|---|---|"]
    for journal_type, code, count, total in _flows(day):
        lines.append(f"| {journal_type} | {code} | {count} | {CURRENCIES[code].format(total)} |")
    lines += ["", "## 4. House fees (settlements)", ""]
    fees = _house_fees(day)
    lines += [f"- {code}: {CURRENCIES[code].format(total)}" for code, total in fees] or ["- none"]
    lines += ["", "## 5. Withdrawals by state", "", "| state | count | amount (minor units) |", "|---|---|---|"]
    lines += [f"| {state} | {n} | {total} |" for state, n, total in _withdrawal_states()]
    lines += ["", "## 6. Failed worker runs today", ""]
    lines += [f"- {worker}: {n}" for worker, n in _worker_failures(day)] or ["- none"]
    lines += ["", "## 7. Actions", "", "- [ ] One improvement or risk from this report opened as a ticket.", ""]
    return "\n".join(lines), not breaches


def parse_day(value: Any) -> date:
    """Parse YYYY-MM-DD."""
    return datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007 (a calendar day, no instant)
