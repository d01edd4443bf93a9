"""A real browser: one operator proposes a forced result in the admin, a second approves it.

Headless Debian Chromium driven by Playwright against a live server; screenshots go to
artifacts/screenshots/. The round's audit trail then shows both operators and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ops.models import Proposal
from ops.tests.browser import SCREENSHOTS, admin_login
from rounds.models import Round

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_forced_result_proposed_by_one_operator_and_approved_by_another(
    browser: Any,
    live_server: Any,
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
    make_staff: Callable[..., Any],
) -> None:
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    round_obj = open_round("20250908")
    winner = place(round_obj, "UP", 2_000_000)
    place(round_obj, "DOWN", 6_000_000)
    lock_and_reach_settlement(round_obj)

    maker = admin_login(browser, live_server.url, alice.email)
    maker.goto(f"/admin/rounds/round/{round_obj.pk}/change/")
    maker.click("a.button:has-text('Propose forced result')")
    maker.select_option("select[name=result]", "UP")
    maker.fill("textarea[name=reason]", "oracle outage, both sources down")
    maker.fill("textarea[name=evidence]", "nasdaq.com official close 101.20")
    maker.screenshot(path=str(SCREENSHOTS / "10-force-propose-form.png"), full_page=True)
    maker.click("input[type=submit]")
    maker.wait_for_selector("ul.messagelist")
    assert "a second operator must approve it" in maker.inner_text("ul.messagelist")
    proposal = Proposal.objects.get()
    decisions = maker.inner_text("#decisions")
    assert "Awaiting a second operator (you proposed it)" in decisions
    assert maker.locator("#decisions a.button:has-text('Approve')").count() == 0  # no approve button for the maker
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED
    maker.screenshot(path=str(SCREENSHOTS / "11-force-pending.png"), full_page=True)

    checker = admin_login(browser, live_server.url, bob.email)
    checker.goto(f"/admin/rounds/round/{round_obj.pk}/change/")
    checker.click("#decisions a.button:has-text('Approve (second operator)')")
    checker.fill("textarea[name=reason]", "close checked on nasdaq.com")
    checker.click("input[type=submit][value='Approve and apply']")
    checker.wait_for_selector("ul.messagelist")
    assert f"Proposal {proposal.pk} is now applied" in checker.inner_text("ul.messagelist")

    settled = Round.objects.get(pk=round_obj.pk)
    assert settled.forced is not None
    assert (settled.status, settled.result) == (Round.Status.SETTLED, "UP")
    assert settled.forced["operator"] == alice.email and settled.forced["approved_by"] == bob.email
    assert winner.account.__class__.objects.get(pk=winner.account_id).balance_u > 2_000_000

    checker.goto(f"/admin/rounds/round/{round_obj.pk}/change/")
    checker.screenshot(path=str(SCREENSHOTS / "12-force-applied-audit-trail.png"), full_page=True)
    trail = checker.locator("fieldset:has(h2:has-text('Audit trail'))").inner_text()
    assert alice.email in trail and bob.email in trail
    assert "approvals.propose" in trail and "approvals.apply" in trail and "rounds.settle" in trail
    assert "oracle outage, both sources down" in trail
