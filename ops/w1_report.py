"""The W1 report (the onboarding pack's week-1 report) from `docs/ops/w1_report_template.md`.

Date, ledger invariants, deposits, withdrawals by state, payouts, round results, and open risks with
their owners (owners from the ops handbook's ownership matrix; a waiver names its own).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from ledger.currencies import CURRENCIES
from ledger.reconciliation import invariant_names, ledger_breaches

TEMPLATE = Path(settings.BASE_DIR) / "docs" / "ops" / "w1_report_template.md"
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
OWNERS = {"ledger": "@be-lead", "payments": "@payments-lead", "review": "@payments-oncall", "workers": "@sre-oncall"}


def _window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _money(code: str, amount_u: int) -> str:
    currency = CURRENCIES.get(code)
    return currency.format(amount_u) if currency else f"{amount_u} {code} (minor units)"


def _journal_totals(journal_type: str, day: date) -> str:
    from ledger.models import Entry

    start, end = _window(day)
    rows = (Entry.objects.filter(journal__type=journal_type, journal__created_at__gte=start,
                                 journal__created_at__lt=end, amount_u__gt=0)
            .values("currency").annotate(n=Count("journal", distinct=True), total=Sum("amount_u")).order_by("currency"))
    lines = ["| currency | count | amount |", "|---|---|---|"]
    lines += [f"| {r['currency']} | {r['n']} | {_money(r['currency'], r['total'])} |" for r in rows]
    return "\n".join(lines) if rows else "none"


def _withdrawals() -> str:
    from payouts.models import Withdrawal

    rows = Withdrawal.objects.values("state", "currency").annotate(n=Count("id"), total=Sum("amount_u")).order_by(
        "state", "currency")
    lines = ["| state | currency | count | amount |", "|---|---|---|---|"]
    lines += [f"| {r['state']} | {r['currency']} | {r['n']} | {_money(r['currency'], r['total'])} |" for r in rows]
    return "\n".join(lines) if rows else "none"


def _rounds(day: date) -> str:
    from rounds.models import Round

    start, end = _window(day)
    rows = Round.objects.filter(settled_at__gte=start, settled_at__lt=end).order_by("code")
    lines = ["| round | status | result |", "|---|---|---|"]
    lines += [f"| {r.code} | {r.status} | {r.result or '-'} |" for r in rows]
    return "\n".join(lines) if rows else "none settled today"


def _risks(day: date, breaches: list) -> str:
    from ops.models import Waiver, WorkerRun
    from payouts.models import Withdrawal
    from payouts.selectors import stuck_finance_jobs

    risks: list[tuple[str, str]] = []
    if breaches:
        risks.append((f"{len(breaches)} ledger invariant breach(es): freeze non-essential payouts", OWNERS["ledger"]))
    stuck = stuck_finance_jobs()
    if stuck:
        risks.append((f"{len(stuck)} stuck finance job(s) (detect_stuck_finance_jobs)", OWNERS["payments"]))
    review = Withdrawal.objects.filter(state=Withdrawal.State.PAYOUT_FAILED).count()
    if review:
        risks.append((f"{review} withdrawal(s) in the manual review queue (funds held)", OWNERS["review"]))
    failed = (WorkerRun.objects.filter(result=WorkerRun.Result.FAILED, finished_at__date=day)
              .values("worker").annotate(n=Count("id")).order_by("worker"))
    risks += [(f"worker {r['worker']}: {r['n']} failed run(s) today", OWNERS["workers"]) for r in failed]
    for waiver in Waiver.objects.filter(closed_at__isnull=True).order_by("deadline"):
        risks.append((f"waiver {waiver.check_name} ({waiver.risk}, ticket {waiver.ticket}) until "
                      f"{waiver.deadline:%Y-%m-%d}", waiver.owner))
    lines = ["| risk | owner |", "|---|---|"] + [f"| {text} | {owner} |" for text, owner in risks]
    return "\n".join(lines) if risks else "none open"


def w1_report(*, day: date) -> tuple[str, bool]:
    """Render the W1 report for one UTC day; return the Markdown and whether every invariant holds."""
    breaches = ledger_breaches()
    invariants = (f"**FAIL** — {len(breaches)} breach(es):\n" + "\n".join(f"- {b}" for b in breaches) if breaches
                  else f"**PASS** — {len(invariant_names())} invariants hold: {', '.join(invariant_names())}.")
    values = {
        "date": f"{day:%Y-%m-%d}",
        "generated_at": f"{timezone.now():%Y-%m-%d %H:%M:%S}",
        "invariants": invariants,
        "deposits": _journal_totals("deposit", day),
        "withdrawals": _withdrawals(),
        "payouts": _journal_totals("payout", day),
        "rounds": _rounds(day),
        "risks": _risks(day, breaches),
    }
    text = PLACEHOLDER.sub(lambda m: values[m.group(1)], TEMPLATE.read_text())
    return text, not breaches
