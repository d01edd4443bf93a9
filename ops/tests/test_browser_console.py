"""A real browser on the operator's console: headless Debian Chromium driven by Playwright.

Finance logs in; the dashboard's figures are read off the page and checked against the database; a
player's timeline shows their deposit, bet and withdrawal in order (newest first); the CSV and the W1
report download. Screenshots (1280 px and tablet) are saved under artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from ledger.money import format_money
from ledger.selectors import tvl
from payouts.models import Withdrawal
from rounds.pools import pools_show

from .browser import SCREENSHOTS, admin_login
from .console_helpers import story

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 768, "height": 1024}


def login(browser: Any, base_url: str, email: str, viewport: dict[str, int]) -> Any:
    return admin_login(browser, base_url, email, viewport=viewport)


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll('#content input, #content select, #content textarea')]
  .filter(el => el.type !== 'hidden' && el.name !== 'csrfmiddlewaretoken')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)"""


OVERFLOWING_CARDS = """() => [...document.querySelectorAll('.console-card')]
  .filter(el => el.scrollWidth > el.clientWidth + 1).map(el => el.querySelector('h2, figcaption').innerText)"""


def tab_until(page: Any, selector: str, limit: int = 80) -> bool:
    """Press Tab from the top of the page until the element has the focus; whether it got there."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return True
    return False


def test_finance_reads_the_dashboard_a_players_timeline_and_the_report(
    browser: Any, live_server: Any, make_player: Any, make_staff: Any, fund: Any
) -> None:
    player = make_player()
    events = story(player=player)
    fund(make_player(), 123_45, currency="USD")
    finance = make_staff(role="finance")

    # The dashboard, at 1280 px: figures read off the page equal the database's.
    page = login(browser, live_server.url, finance.email, DESKTOP)
    page.goto("/admin/")
    usdc = tvl(currency="USDC")
    row = page.locator("#tvl tr[data-currency='USDC']")
    assert row.locator("[data-figure=cash]").inner_text() == format_money(usdc.total_cash_u, "USDC") == "35.000000 USDC"
    assert row.locator("[data-figure=locked]").inner_text() == format_money(usdc.locked_u, "USDC")
    assert row.locator("[data-figure=pending]").inner_text() == format_money(usdc.pending_withdrawals_u, "USDC")
    usd_cash = page.locator("#tvl tr[data-currency='USD'] [data-figure=cash]").inner_text()
    assert usd_cash == format_money(tvl(currency="USD").total_cash_u, "USD") == "$123.45"
    queue = Withdrawal.objects.filter(state=Withdrawal.State.PAYOUT_FAILED).count()
    assert int(page.inner_text("#manual-review-count")) == queue
    round_obj = events["round"]
    round_obj.refresh_from_db()
    pools_show(round_obj=round_obj)  # an OPEN round's pools so far: its stripes' figures
    assert page.inner_text("[data-figure=round-total]").startswith(format_money(round_obj.total_pool_u, "USDC"))
    assert page.inner_text("[data-figure=round-status]") == round_obj.status
    assert "in " in page.inner_text("[data-figure=lock-countdown]")
    assert page.locator("svg[role=img]").count() >= 5  # pool split and the four 30-day charts
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    assert tab_until(page, "#player-q"), "the player search is not reachable with the keyboard"
    page.screenshot(path=str(SCREENSHOTS / "console-dashboard.png"), full_page=True)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= DESKTOP["width"]
    assert page.evaluate(OVERFLOWING_CARDS) == []

    # Find the player with the keyboard, open their page: withdrawal, bet, deposit, newest first.
    page.keyboard.type(player.email)
    page.keyboard.press("Enter")
    page.wait_for_selector("#players")
    page.click(f"#players a:has-text('{player.email}')")
    page.wait_for_selector("#timeline")
    kinds = page.eval_on_selector_all("#timeline tbody tr", "rows => rows.map(r => r.dataset.kind)")
    positions = [kinds.index(kind) for kind in ("withdrawal", "bet", "deposit")]
    assert positions == sorted(positions), kinds
    timeline = page.inner_text("#timeline")
    assert f"withdrawal {events['withdrawal'].pk}" in timeline and f"bet {events['bet'].bet_id}" in timeline
    assert f"deposit {events['deposit'].public_id}" in timeline
    balances = page.inner_text("#balances tr[data-currency='USDC']")
    assert "35.000000 USDC" in balances and "10.000000 USDC" in balances and "5.000000 USDC" in balances
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    page.screenshot(path=str(SCREENSHOTS / "console-player.png"), full_page=True)

    # The CSV: the same rows, in the same order.
    with page.expect_download() as download_info:
        page.click("#csv-export")
    rows = list(csv.reader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert rows[0][:4] == ["at_utc", "kind", "object", "summary"]
    csv_kinds = [r[1] for r in rows[1:]]
    assert csv_kinds == kinds
    bet_row = next(r for r in rows if r[1] == "bet")
    assert bet_row[4:7] == ["5000000", "USDC", "5.000000 USDC"]

    # Filter by kind: only the bets are left.
    page.check("input[name=kind][value=bet]")
    page.click(".console-filter button[type=submit]")
    page.wait_for_selector("#timeline")
    assert set(page.eval_on_selector_all("#timeline tbody tr", "rows => rows.map(r => r.dataset.kind)")) == {"bet"}

    # The daily report: a page and a W1 download.
    page.goto("/admin/console/report/")
    assert "PASS" in page.inner_text("#invariants")
    assert "50.000000 USDC" in page.inner_text("#report-deposits")
    page.screenshot(path=str(SCREENSHOTS / "console-report.png"), full_page=True)
    with page.expect_download() as report_info:
        page.click("#report-download")
    report = Path(report_info.value.path()).read_text()
    assert "## 2. Invariants" in report and "## 7. Open risks (owner)" in report
    assert "| custody | USDC | credited | 1 | 50.000000 USDC |" in report

    # On a tablet the dashboard fits the width: no sideways scrolling.
    tablet = login(browser, live_server.url, finance.email, TABLET)
    tablet.goto("/admin/")
    tablet.screenshot(path=str(SCREENSHOTS / "console-dashboard-tablet.png"), full_page=True)
    assert tablet.evaluate("() => document.documentElement.scrollWidth") <= TABLET["width"]
    assert tablet.evaluate(OVERFLOWING_CARDS) == []
    for name in ("console-dashboard", "console-player", "console-report", "console-dashboard-tablet"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000
