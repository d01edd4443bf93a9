"""A real browser: headless Debian Chromium driven by Playwright against a live server.

One operator logs in and approves a withdrawal; after a declined payout, a second operator resolves
it from the manual-review queue. Screenshots are saved under artifacts/screenshots/.
"""

from __future__ import annotations

from typing import Any

import pytest

from ops.tests.browser import SCREENSHOTS, admin_login
from payouts.models import Withdrawal
from payouts.services import payout_submit, withdrawal_request
from payouts.tests.helpers import destination_for

from .helpers import balances

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def act(page: Any, label: str, reason: str, shot: str) -> None:
    """Press a transition button on the change page, give the reason, submit."""
    page.click(f"a.button:has-text('{label}')")
    page.fill("textarea[name=reason]", reason)
    page.screenshot(path=str(SCREENSHOTS / f"{shot}-form.png"), full_page=True)
    page.click(f"input[type=submit][value='{label}']")
    page.wait_for_selector("ul.messagelist")
    page.screenshot(path=str(SCREENSHOTS / f"{shot}-done.png"), full_page=True)


def test_operator_approves_and_second_operator_resolves_from_the_queue(
    browser: Any, live_server: Any, stub: Any, funded_player: Any, finance: Any, finance2: Any
) -> None:
    start = balances(funded_player)
    paid = withdrawal_request(
        user=funded_player, amount_u=10_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    failing = withdrawal_request(
        user=funded_player, amount_u=7_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )

    first = admin_login(browser, live_server.url, finance.email)
    first.goto(f"/admin/payouts/withdrawal/{paid.pk}/change/")
    act(first, "Approve", "customer verified", "01-approve")
    assert "is now approved" in first.inner_text("ul.messagelist")
    first.goto(f"/admin/payouts/withdrawal/{failing.pk}/change/")
    act(first, "Approve", "customer verified", "02-approve-second")

    assert payout_submit(withdrawal_id=paid.pk).status == "accepted"
    stub.set_mode("adyen_transfer", "decline", times=1)
    assert payout_submit(withdrawal_id=failing.pk).status in ("declined", "refused")
    assert Withdrawal.objects.get(pk=failing.pk).state == Withdrawal.State.PAYOUT_FAILED
    assert balances(funded_player).held_u == 17_000_000

    second = admin_login(browser, live_server.url, finance2.email)
    second.goto("/admin/payouts/manualreviewwithdrawal/")
    second.screenshot(path=str(SCREENSHOTS / "03-manual-review-queue.png"), full_page=True)
    assert (
        "1 withdrawal in manual review" in second.inner_text("#changelist-form")
        or second.locator("#result_list tbody tr").count() == 1
    )
    second.click(f"#result_list a[href*='/{failing.pk}/change/']")
    act(second, "Refund (release funds)", "gateway confirmed failure", "04-refund")
    assert "is now refunded" in second.inner_text("ul.messagelist")

    refunded = Withdrawal.objects.get(pk=failing.pk)
    assert refunded.state == Withdrawal.State.REFUNDED
    after = balances(funded_player)
    assert after.available_u == start.available_u - 10_000_000 and after.held_u == 10_000_000
    second.goto(f"/admin/payouts/withdrawal/{failing.pk}/change/")
    second.screenshot(path=str(SCREENSHOTS / "05-refunded-audit-trail.png"), full_page=True)
    trail = second.inner_text("body")
    assert finance2.email in trail and "gateway confirmed failure" in trail
    assert (SCREENSHOTS / "04-refund-done.png").stat().st_size > 10_000
