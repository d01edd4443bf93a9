"""The operator's console: the dashboard's figures equal the commands' and /metrics', timelines, report."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import Client

from ledger.money import format_money
from ledger.selectors import tvl, tvl_by_currency
from ops.console.timeline import KINDS, TimelineFilter, player_timeline, timeline_page
from ops.models import Switch, Waiver

from .console_helpers import custody_deposit, story

pytestmark = pytest.mark.django_db


def staff_client(make_staff: Any, role: str = "finance") -> tuple[Client, Any]:
    user = make_staff(role=role)
    client = Client()
    client.force_login(user)
    return client, user


def metric(text: str, name: str, labels: str = "") -> int:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return int(float(match[1]))


def currency_row(html: str, currency: str) -> str:
    """The inside of the page's table row for one currency; fail when there is none."""
    match = re.search(rf'<tr data-currency="{re.escape(currency)}">(.*?)</tr>', html, re.S)
    assert match, f"no {currency} row"
    return match[1]


def streamed(response: HttpResponseBase) -> bytes:
    """The body of a streamed download; fail when the view did not stream it."""
    assert isinstance(response, StreamingHttpResponse), type(response)
    return response.getvalue()


def test_tvl_by_currency_equals_tvl_per_currency(make_player: Any, fund: Any) -> None:
    fund(make_player(), 12_345_678)
    fund(make_player(), 250, currency="USD")
    every = tvl_by_currency()
    assert set(every) == {"USDC", "USD"}
    for code, figures in every.items():
        assert figures == tvl(currency=code)


def test_dashboard_shows_the_commands_and_metrics_figures(make_staff: Any, make_player: Any, fund: Any) -> None:
    player = make_player()
    story(player=player)
    fund(make_player(), 1_000, currency="USD")
    Switch.objects.create(name=Switch.Name.PAYOUT_FREEZE, on=True, reason="PSP incident", changed_by="ops@x")
    from datetime import timedelta

    from django.utils import timezone

    Waiver.objects.create(
        check_name="hsts",
        ticket="T-1",
        risk="high",
        owner="alice",
        reason="r",
        deadline=timezone.now() + timedelta(days=2),
    )
    client, _ = staff_client(make_staff, role="support")
    page = client.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()

    out = io.StringIO()
    call_command("tvl", "--json", stdout=out)  # no --currency: every currency, as the card shows them
    import json

    every = json.loads(out.getvalue())
    assert [t["currency"] for t in every] == re.findall(r'<tr data-currency="([^"]+)">', html) == ["USD", "USDC"]
    for t in every:
        row = currency_row(html, t["currency"])
        for figure, key in (("locked", "locked_u"), ("cash", "total_cash_u"), ("pending", "pending_withdrawals_u")):
            assert f'data-figure="{figure}">{format_money(t[key], t["currency"])}<' in row
    out = io.StringIO()
    call_command("tvl", "--json", "--currency", "USDC", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures == next(t for t in every if t["currency"] == "USDC")
    usdc = currency_row(html, "USDC")
    assert f'data-figure="cash">{format_money(figures["total_cash_u"], "USDC")}<' in usdc
    assert f'data-figure="locked">{format_money(figures["locked_u"], "USDC")}<' in usdc
    assert f'data-figure="pending">{format_money(figures["pending_withdrawals_u"], "USDC")}<' in usdc
    assert figures == {
        "currency": "USDC",
        "locked_u": 5_000_000,
        "total_cash_u": 35_000_000,
        "pending_withdrawals_u": 10_000_000,
        "house_u": 0,
    }
    assert "$10.00" in currency_row(html, "USD")

    metrics = Client().get("/metrics").content.decode()
    assert metric(metrics, "tvl_total_cash_u", '{currency="USDC"}') == figures["total_cash_u"]
    assert metric(metrics, "payout_manual_review_queue_size") == 0
    assert '<p class="console-big" id="manual-review-count">0</p>' in html
    assert "5.000000 USDC in 1 bet<" in html  # today's pool
    assert "UP: 5.000000 USDC, 1 bet — 100.0 %" in html
    assert "Payout freeze" in html and "PSP incident" in html
    assert "hsts" in html and "alice" in html  # the waiver near its deadline
    totals = dict(re.findall(r"<strong>([^<]+)</strong>, USDC: total <span class=\"money\">([^<]+)</span>", html))
    assert totals == {
        "Deposits credited": "50.000000 USDC",
        "Withdrawals requested": "10.000000 USDC",
        "Stakes (by round day; open rounds: today)": "5.000000 USDC",
        "House fees (by round)": "0.000000 USDC",
    }
    assert "No reconciliation has run yet." in html
    assert 'href="/admin/payouts/manualreviewwithdrawal/"' in html
    assert "Switches" in html and "Switchs" not in html


def test_non_staff_gets_the_login_page(make_player: Any) -> None:
    client = Client()
    client.force_login(make_player())
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_player_page_balances_and_timeline_newest_first(make_staff: Any, make_player: Any) -> None:
    player = make_player()
    s = story(player=player)
    client, _ = staff_client(make_staff, role="support")
    page = client.get(f"/admin/console/players/{player.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    balances = currency_row(html, "USDC")
    assert re.findall(r'class="money">([^<]+)<', balances) == ["35.000000 USDC", "10.000000 USDC", "5.000000 USDC"]
    kinds = re.findall(r'<tr data-kind="(\w+)">', html)
    # withdrawal request (and its audit transition), its hold entries, the bet and its entry, then the deposit
    firsts = [kinds.index(k) for k in ("withdrawal", "bet", "deposit")]
    assert firsts == sorted(firsts), kinds
    assert {"entry", "webhook"} <= set(kinds)
    assert f"withdrawal {s['withdrawal'].pk}" in html and f"bet {s['bet'].bet_id}" in html

    only_bets = client.get(f"/admin/console/players/{player.pk}/", {"kind": ["bet"]}).content.decode()
    assert set(re.findall(r'<tr data-kind="(\w+)">', only_bets)) == {"bet"}
    future = client.get(f"/admin/console/players/{player.pk}/", {"day_from": "2999-01-01"}).content.decode()
    assert re.findall(r'<tr data-kind="(\w+)">', future) == []


def test_player_timeline_csv_is_the_whole_timeline(make_staff: Any, make_player: Any) -> None:
    player = make_player()
    story(player=player)
    client, _ = staff_client(make_staff)
    response = client.get(f"/admin/console/players/{player.pk}/", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert f"player-{player.pk}-timeline.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(streamed(response).decode())))
    assert rows[0] == ["at_utc", "kind", "object", "summary", "amount_u", "currency", "amount", "actor"]
    expected = list(player_timeline(user=player, flt=TimelineFilter()))
    assert [r[2] for r in rows[1:]] == [row.object_label for row in expected]
    assert [r[0] for r in rows[1:]] == sorted((r[0] for r in rows[1:]), reverse=True)
    bet = next(r for r in rows if r[1] == "bet")
    assert bet[4:7] == ["5000000", "USDC", "5.000000 USDC"]


def test_timeline_page_reads_only_what_it_shows(
    make_player: Any, fund: Any, django_assert_max_num_queries: Any
) -> None:
    player = make_player()
    for i in range(30):
        custody_deposit(user=player, amount_u=1_000_000 + i, reference=f"many-{i}")
    with django_assert_max_num_queries(len(KINDS) + 2):
        rows, more = timeline_page(player_timeline(user=player, flt=TimelineFilter()), limit=5)
    assert more and len(rows) == 5
    assert [r.at for r in rows] == sorted((r.at for r in rows), reverse=True)


def test_withdrawal_and_round_timelines(make_staff: Any, make_player: Any) -> None:
    player = make_player()
    s = story(player=player)
    client, _ = staff_client(make_staff)
    html = client.get(f"/admin/console/withdrawals/{s['withdrawal'].pk}/").content.decode()
    assert f"withdrawal:{s['withdrawal'].pk}:" in html  # the hold journal's entries
    assert "10.000000 USDC" in html and player.email in html
    html = client.get(f"/admin/console/rounds/{s['round'].code}/").content.decode()
    assert f"bet {s['bet'].bet_id}" in html and "5.000000 USDC" in html
    csv_text = streamed(client.get(f"/admin/console/rounds/{s['round'].code}/", {"format": "csv"}))
    assert str(s["bet"].bet_id).encode() in csv_text


def test_console_pages_need_the_view_permission(make_staff: Any, make_player: Any) -> None:
    from django.contrib.auth.models import Group

    player = make_player()
    client, user = staff_client(make_staff, role="support")
    user.groups.set([Group.objects.create(name="nothing")])
    assert client.get(f"/admin/console/players/{player.pk}/").status_code == 403
    assert client.get("/admin/console/report/").status_code == 403


def test_report_page_and_w1_download(make_staff: Any, make_player: Any) -> None:
    from django.utils import timezone

    player = make_player()
    story(player=player)
    Waiver.objects.create(
        check_name="backup", ticket="T-2", risk="high", owner="bob", reason="r", deadline=timezone.now()
    )
    client, _ = staff_client(make_staff)
    day = timezone.now().date().isoformat()
    html = client.get("/admin/console/report/", {"day": day}).content.decode()
    assert "<strong>PASS</strong>" in html and "custody" in html and "50.000000 USDC" in html
    assert "waiver backup" in html and "owner: <strong>bob</strong>" in html
    download = client.get("/admin/console/report/", {"day": day, "format": "md"})
    assert f"reconciliation-{day}.md" in download["Content-Disposition"]
    text = download.content.decode()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == [
        "1. Date",
        "2. Invariants",
        "3. Deposits",
        "4. Withdrawals by state",
        "5. Payouts",
        "6. Round results",
        "7. Open risks (owner)",
    ]
    assert "| custody | USDC | credited | 1 | 50.000000 USDC |" in text
    assert "| requested | USDC | 1 | 10.000000 USDC |" in text
    assert "owner: bob" in text
    past = client.get("/admin/console/report/", {"day": "2020-01-02", "format": "md"}).content.decode()
    assert "2020-01-02" in past and "| custody |" not in past
    assert client.get("/admin/console/report/", {"day": "not-a-day"}).status_code == 404


def test_admin_lists_show_money_in_major_units(make_staff: Any, make_player: Any) -> None:
    player = make_player()
    s = story(player=player)
    client = Client()
    from accounts.tests.factories import StaffFactory

    client.force_login(StaffFactory.create(role="admin"))
    pages = {
        "/admin/rounds/round/": "5.000000 USDC",
        "/admin/rounds/bet/": "5.000000 USDC",
        f"/admin/rounds/bet/{s['bet'].pk}/change/": "5.000000 USDC",
        "/admin/webhooks/deposit/": "50.000000 USDC",
        "/admin/payouts/withdrawal/": "10.000000 USDC",
        "/admin/ledger/account/": "35.000000 USDC",
        "/admin/ledger/entry/": "-5.000000 USDC",
        f"/admin/payouts/withdrawal/{s['withdrawal'].pk}/change/": "<td>-10.000000 USDC</td>",  # its hold entries
    }
    for url, text in pages.items():
        html = client.get(url).content.decode()
        assert text in html, url
    assert ">5000000<" not in client.get("/admin/rounds/round/").content.decode()


def test_on_call_runbook_timeline_section_points_to_the_console() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs/ops/on_call_runbook.md").read_text()
    section = text.split("Reconstruct the timeline", 1)[1].split("\n4. ", 1)[0]
    assert "/admin/console/withdrawals/<id>/" in section and "/admin/console/players/<id>/" in section
    assert "object_type = 'payouts.withdrawal' AND object_id" in section  # the SQL no longer mixes object types


def test_money_template_filter() -> None:
    from django.template import Context, Template

    rendered = Template("{% load money %}{{ a|money:'USD' }} {{ b|money:'USDC' }} {{ c|money:'USD' }}").render(
        Context({"a": 10000, "b": 5_000_000, "c": None})
    )
    assert rendered == "$100.00 5.000000 USDC —"


def test_report_command_writes_the_same_w1_as_the_admin(make_staff: Any, make_player: Any) -> None:
    from django.utils import timezone

    story(player=make_player())
    out = io.StringIO()
    call_command("daily_reconciliation_report", "--w1", stdout=out)
    client, _ = staff_client(make_staff)
    download = client.get("/admin/console/report/", {"day": timezone.now().date().isoformat(), "format": "md"})

    def without_generated(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("Generated ")]

    assert without_generated(out.getvalue()) == without_generated(download.content.decode())


def test_adjustment_legs_in_major_units(make_staff: Any, make_player: Any, fund: Any, settings: Any) -> None:
    from ledger.decisions import adjustment_propose
    from ledger.models import Account

    settings.FOUR_EYES_THRESHOLDS = {"USDC": "1"}  # 1.5 USDC needs a second operator: the proposal stays pending
    player = make_player()
    fund(player, 1_500_000)
    account = Account.objects.get(owner=player, kind=Account.Kind.USER_AVAILABLE)
    from ledger.services import house_account

    house = house_account(currency="USDC")
    staff = make_staff(role="admin")
    proposal = adjustment_propose(legs=[(account.pk, -1_500_000), (house.pk, 1_500_000)], reason="r", acting_user=staff)
    client = Client()
    client.force_login(staff)
    html = client.get(f"/admin/ops/proposal/{proposal.pk}/change/").content.decode()
    assert f"USDC: 1.500000 USDC<br>{account.name}: -1.500000 USDC<br>house: 1.500000 USDC" in html
    home = client.get("/admin/").content.decode()
    assert '<p class="console-big" id="pending-decisions">1</p>' in home


def test_timeline_csv_keeps_free_text_from_being_a_formula() -> None:
    from datetime import UTC, datetime

    from ops.console.timeline import TimelineRow, timeline_csv_rows

    row = TimelineRow(datetime(2026, 1, 2, tzinfo=UTC), "audit", "x 1", '=HYPERLINK("http://evil")', -5, "USD", "@me")
    assert list(timeline_csv_rows([row]))[1] == [
        "2026-01-02T00:00:00+00:00",
        "audit",
        "x 1",
        '\'=HYPERLINK("http://evil")',
        "-5",
        "USD",
        "-$0.05",
        "'@me",
    ]
