"""The console's admin pages: dashboard context, timelines (page and CSV), the daily report.

Views only check permissions, read through the selectors and render; nothing here decides anything.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from ledger.money import format_money_safe
from ledger.selectors import user_wallet

from . import charts
from .forms import ReportDayForm, TimelineFilterForm
from .report import CurrencyRow, DailyReport, daily_report, render_w1_markdown
from .selectors import Dashboard, dashboard
from .timeline import (
    TimelineFilter,
    TimelineRow,
    player_timeline,
    round_timeline,
    timeline_csv_rows,
    timeline_page,
    withdrawal_timeline,
)

PAGE_ROWS = 200
SERIES_TITLES = {
    "deposits": "Deposits credited",
    "withdrawals": "Withdrawals requested",
    "stakes": "Stakes (by round day; open rounds: today)",
    "fees": "House fees (by round)",
}


def _require(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """The home page's figures and charts (staff only: the admin index is behind admin_view)."""
    data: Dashboard = dashboard()
    tvl = [
        {
            "currency": code,
            "locked": format_money_safe(t.locked_u, code),
            "cash": format_money_safe(t.total_cash_u, code),
            "pending": format_money_safe(t.pending_withdrawals_u, code),
            "house": format_money_safe(t.house_u, code),
        }
        for code, t in data.tvl.items()
    ]
    chart_rows = [
        {
            "currency": code,
            "charts": [
                charts.daily_bar_chart(
                    title=SERIES_TITLES[name], days=series.days, values=series.series[name], currency=code
                )
                for name in SERIES_TITLES
            ],
        }
        for code, series in data.daily.items()
    ]
    pool_split = None
    current = data.current_round
    if current is not None:
        r = current.round
        pool_split = charts.split_bar(
            [
                ("UP", r.up_pool_u, format_money_safe(r.up_pool_u, r.currency) + _bets(r.up_bets), "up"),
                ("DOWN", r.down_pool_u, format_money_safe(r.down_pool_u, r.currency) + _bets(r.down_bets), "down"),
            ]
        )
    outcome_total = sum(n for _, n in data.payout_outcomes)
    outcomes = charts.split_bar([(o, n, f"{n} attempts", f"outcome-{o}") for o, n in data.payout_outcomes])
    return {
        "dash": data,
        "tvl_rows": tvl,
        "manual_review_total": ", ".join(
            format_money_safe(t or 0, c) for c, t in sorted(data.manual_review_total.items())
        ),
        "chart_rows": chart_rows,
        "pool_split": pool_split,
        "round_total": format_money_safe(current.round.total_pool_u, current.round.currency) if current else "",
        "lock_countdown": _countdown(current.lock_in_s) if current and current.lock_in_s is not None else "",
        "outcomes": outcomes,
        "outcome_total": outcome_total,
        "report_url": reverse("admin:console-report"),
    }


def _bets(n: int) -> str:
    return f", {n} bet{'' if n == 1 else 's'}"


def _countdown(seconds: int) -> str:
    if seconds <= 0:
        return "lock time passed (the next tick locks it)"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min"


def _timeline_response(
    request: HttpRequest,
    *,
    site: AdminSite,
    title: str,
    subject: models.Model,
    rows_for: Callable[[TimelineFilter], Iterator[TimelineRow]],
    csv_name: str,
    template: str = "ops/console/timeline.html",
    extra: dict[str, Any] | None = None,
) -> HttpResponseBase:
    form = TimelineFilterForm(request.GET or None)
    flt = form.timeline_filter()
    if request.GET.get("format") == "csv":
        return _csv_response(rows_for(flt), csv_name)
    rows, more = timeline_page(rows_for(flt), limit=PAGE_ROWS)
    query = request.GET.copy()
    query["format"] = "csv"
    context = {
        **site.each_context(request),
        "title": title,
        "subject": subject,
        "form": form,
        "rows": rows,
        "more": more,
        "page_rows": PAGE_ROWS,
        "csv_query": query.urlencode(),
        **(extra or {}),
    }
    return render(request, template, context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_response(rows: Iterable[TimelineRow], name: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        for row in timeline_csv_rows(rows):
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def player_view(request: HttpRequest, user_id: int, *, site: AdminSite) -> HttpResponseBase:
    """A player's balances by bucket, then their whole timeline."""
    _require(request, "accounts.view_user")
    user = get_object_or_404(get_user_model(), pk=user_id)
    wallet = [
        {
            "currency": w["currency"],
            "available": format_money_safe(w["available_u"], w["currency"]),
            "held": format_money_safe(w["held_u"], w["currency"]),
            "in_open_bets": format_money_safe(w["in_open_bets_u"], w["currency"]),
        }
        for w in user_wallet(user=user)
    ]
    return _timeline_response(
        request,
        site=site,
        title=f"Player {user.email}",
        subject=user,
        csv_name=f"player-{user.pk}-timeline.csv",
        rows_for=lambda flt: player_timeline(user=user, flt=flt),
        template="ops/console/player.html",
        extra={"wallet": wallet},
    )


def player_search_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    """Find a player by email to open their page."""
    _require(request, "accounts.view_user")
    q = request.GET.get("q", "").strip()
    users = (
        list(get_user_model().objects.filter(email__icontains=q, is_staff=False).order_by("email")[:50]) if q else []
    )
    context = {
        **site.each_context(request),
        "title": "Find a player",
        "q": q,
        "users": users,
    }
    return render(request, "ops/console/player_search.html", context)


def withdrawal_view(request: HttpRequest, withdrawal_id: int, *, site: AdminSite) -> HttpResponseBase:
    """One withdrawal's timeline."""
    from payouts.models import Withdrawal

    _require(request, "payouts.view_withdrawal")
    withdrawal = get_object_or_404(Withdrawal.objects.select_related("user"), pk=withdrawal_id)
    return _timeline_response(
        request,
        site=site,
        title=f"Withdrawal {withdrawal.pk}: {format_money_safe(withdrawal.amount_u, withdrawal.currency)} "
        f"({withdrawal.state})",
        subject=withdrawal,
        csv_name=f"withdrawal-{withdrawal.pk}-timeline.csv",
        rows_for=lambda flt: withdrawal_timeline(withdrawal=withdrawal, flt=flt),
        extra={"player": withdrawal.user},
    )


def round_view(request: HttpRequest, code: str, *, site: AdminSite) -> HttpResponseBase:
    """One round's timeline."""
    from rounds.models import Round

    _require(request, "rounds.view_round")
    round_obj = get_object_or_404(Round, code=code)
    return _timeline_response(
        request,
        site=site,
        title=f"Round {round_obj.code} ({round_obj.status})",
        subject=round_obj,
        csv_name=f"round-{round_obj.code}-timeline.csv",
        rows_for=lambda flt: round_timeline(round_obj=round_obj, flt=flt),
    )


def _report_rows(report: DailyReport) -> dict[str, Any]:
    def money(rows: Sequence[CurrencyRow]) -> list[dict[str, object]]:
        return [{**row, "amount": format_money_safe(row["total_u"] or 0, row["currency"])} for row in rows]

    return {
        "report_deposits": money(report.deposits),
        "report_requested": money(report.withdrawals_requested),
        "report_states": money(report.withdrawals_by_state),
        "report_paid": money(report.payouts_paid),
        "report_rounds": [
            {
                "code": r.code,
                "status": r.status,
                "result": r.result or r.void_reason or "—",
                "up": format_money_safe(r.up_pool_u, r.currency),
                "down": format_money_safe(r.down_pool_u, r.currency),
                "fee": format_money_safe(r.fee_u, r.currency),
                "breakage": format_money_safe(r.breakage_u, r.currency),
                "winners": "—" if r.winners is None else r.winners,
            }
            for r in report.rounds
        ],
    }


def report_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    """The daily reconciliation report of any UTC day, as a page or a W1 Markdown download."""
    _require(request, "ledger.view_reconciliationrun")
    form = ReportDayForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        raise Http404("day must be YYYY-MM-DD")
    day = form.day_or(timezone.now().date())
    report = daily_report(day=day)
    if request.GET.get("format") == "md":
        response = HttpResponse(render_w1_markdown(report), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="reconciliation-{day:%Y-%m-%d}.md"'
        return response
    context = {
        **site.each_context(request),
        "title": f"Daily reconciliation report — {day:%Y-%m-%d}",
        "form": form,
        "report": report,
        "day": day,
        **_report_rows(report),
    }
    return render(request, "ops/console/report.html", context)
