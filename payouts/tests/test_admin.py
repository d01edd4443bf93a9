"""The admin console: lists and filters, the change page (ledger entries, audit trail, buttons),
transition buttons with a reason form, the bulk approve action, and the manual-review queue."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from ops.models import AuditRecord
from payouts.models import Withdrawal
from payouts.services import payout_submit, withdrawal_approve

from .factories import WithdrawalFactory
from .helpers import balances, snapshot

BASE = "/admin/payouts/withdrawal/"


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def requested(db: Any) -> Withdrawal:
    return WithdrawalFactory.create(amount_u=4_000_000)


def test_list_filters_and_change_page(requested: Withdrawal, finance: Any) -> None:
    client = login(finance)
    page = client.get(BASE, {"state__exact": "requested", "provider__exact": "adyen"})
    assert page.status_code == 200
    assert requested.user.email in page.content.decode()
    assert requested.user.email not in client.get(BASE, {"state__exact": "paid"}).content.decode()

    html = client.get(f"{BASE}{requested.pk}/change/").content.decode()
    assert f"withdrawal:{requested.pk}:hold" in html  # ledger entries
    assert "payouts.withdrawal.request" in html  # audit trail
    assert f"{BASE}{requested.pk}/act/approve/" in html
    assert f"{BASE}{requested.pk}/act/reject/" in html
    assert 'name="_save"' not in html  # read-only: no form can set state or amounts


def test_an_operator_finds_a_withdrawal_by_its_flow_id(requested: Withdrawal, finance: Any) -> None:
    other = WithdrawalFactory.create()
    client = login(finance)
    page = client.get(BASE, {"q": requested.flow_id}).content.decode()
    assert f"{BASE}{requested.pk}/change/" in page and f"{BASE}{other.pk}/change/" not in page
    assert requested.flow_id in client.get(f"{BASE}{requested.pk}/change/").content.decode()


def test_no_form_can_change_a_withdrawal(requested: Withdrawal, make_staff: Any) -> None:
    admin = make_staff(role="admin")
    frozen = snapshot()
    response = login(admin).post(f"{BASE}{requested.pk}/change/", {"state": "paid", "amount_u": 1})
    assert response.status_code == 403
    assert login(admin).get(f"{BASE}add/").status_code == 403
    assert login(admin).post(f"{BASE}{requested.pk}/delete/", {"post": "yes"}).status_code == 403
    assert snapshot() == frozen


def test_buttons_call_the_services(requested: Withdrawal, finance: Any, assert_ledger_ok: Any) -> None:
    client = login(finance)
    before = balances(requested.user)
    frozen = snapshot()
    response = client.post(f"{BASE}{requested.pk}/act/reject/", {"reason": ""})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert snapshot() == frozen

    response = client.post(f"{BASE}{requested.pk}/act/reject/", {"reason": "duplicate request"}, follow=True)
    assert "is now rejected" in response.content.decode()
    requested.refresh_from_db()
    assert requested.state == Withdrawal.State.REJECTED
    assert balances(requested.user).held_u == 0
    assert balances(requested.user).available_u == before.available_u + 4_000_000
    assert_ledger_ok()

    response = client.post(f"{BASE}{requested.pk}/act/approve/", {"reason": ""}, follow=True)
    assert "refused" in response.content.decode()


def test_support_sees_no_buttons_and_cannot_act(requested: Withdrawal, support: Any) -> None:
    client = login(support)
    page = client.get(f"{BASE}{requested.pk}/change/").content.decode()
    assert "/act/" not in page
    frozen = snapshot()
    response = client.post(f"{BASE}{requested.pk}/act/approve/", {"reason": "x"}, follow=True)
    assert "refused" in response.content.decode()
    response = client.post(BASE, {"action": "bulk_approve", "_selected_action": [requested.pk]})
    assert snapshot() == frozen


def test_bulk_approve_obeys_the_same_rules(
    finance: Any, finance2: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.FOUR_EYES_THRESHOLDS = {"USDC": "5"}
    small = WithdrawalFactory.create(amount_u=1_000_000)
    big = WithdrawalFactory.create(amount_u=6_000_000)
    done = WithdrawalFactory.create(amount_u=1_000_000, approved=True, approver=finance2)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = login(finance).post(
            BASE, {"action": "bulk_approve", "_selected_action": [small.pk, big.pk, done.pk]}, follow=True
        )
    text = response.content.decode()
    assert "Approved 1 withdrawal(s)." in text
    assert "await a second operator" in text
    assert f"Not approved #{done.pk}" in text
    assert len(callbacks) == 1
    states = dict(Withdrawal.objects.values_list("pk", "state"))
    assert states == {small.pk: "approved", big.pk: "requested", done.pk: "approved"}

    # The second operator gives their own reason: not in bulk, on the withdrawal's page (required there).
    bulk = login(finance2).post(BASE, {"action": "bulk_approve", "_selected_action": [big.pk]}, follow=True)
    assert f"Not approved #{big.pk}: Give a reason for approving proposal" in bulk.content.decode()
    assert Withdrawal.objects.get(pk=big.pk).state == "requested"
    page = login(finance2).post(f"{BASE}{big.pk}/act/approve/", {"reason": ""})
    assert page.status_code == 200 and "This field is required" in page.content.decode()
    assert Withdrawal.objects.get(pk=big.pk).state == "requested"
    login(finance2).post(f"{BASE}{big.pk}/act/approve/", {"reason": "limits checked"}, follow=True)
    assert Withdrawal.objects.get(pk=big.pk).state == "approved"
    row = AuditRecord.objects.get(action="payouts.withdrawal.approve", object_id=str(big.pk))
    assert (row.actor_label, row.reason, row.data["proposal_reason"]) == (
        finance2.email,
        "limits checked",
        "bulk approval in the admin",
    )


def test_manual_review_queue(stub: Any, finance: Any, requested: Withdrawal, assert_ledger_ok: Any) -> None:
    failed = WithdrawalFactory.create(failed=True, psp=stub, amount_u=2_000_000)
    client = login(finance)

    page = client.get("/admin/payouts/manualreviewwithdrawal/").content.decode()
    assert f"/admin/payouts/manualreviewwithdrawal/{failed.pk}/change/" in page
    assert f"/admin/payouts/manualreviewwithdrawal/{requested.pk}/change/" not in page

    detail = client.get(f"/admin/payouts/manualreviewwithdrawal/{failed.pk}/change/").content.decode()
    for action in ("confirm_sent", "refund_failed", "retry"):
        assert f"/admin/payouts/manualreviewwithdrawal/{failed.pk}/act/{action}/" in detail
    assert "declined" in detail  # the payout attempt

    response = client.post(
        f"/admin/payouts/manualreviewwithdrawal/{failed.pk}/act/refund_failed/",
        {"reason": "bank says account closed"},
        follow=True,
    )
    assert "is now refunded" in response.content.decode()
    assert_ledger_ok()


def test_every_payouts_admin_page_renders(stub: Any, requested: Withdrawal, finance: Any, make_staff: Any) -> None:
    withdrawal_approve(withdrawal_id=requested.pk, acting_user=finance)
    payout_submit(withdrawal_id=requested.pk)
    client = login(make_staff(role="admin", is_superuser=True))
    for url in (
        "/admin/",
        "/admin/payouts/",
        BASE,
        f"{BASE}{requested.pk}/change/",
        "/admin/payouts/payoutattempt/",
        "/admin/payouts/payoutevent/",
        "/admin/payouts/manualreviewwithdrawal/",
        f"{BASE}{requested.pk}/act/retry/",
    ):
        assert client.get(url, follow=True).status_code == 200, url


def test_money_on_the_change_page_is_written_like_every_money_column(requested: Withdrawal, finance: Any) -> None:
    """The title (`__str__`), the amount field, the ledger entries and the action page: major units with the
    currency (`ledger.money`), and no column says "minor units" over an amount in major units."""
    from ledger.models import Entry

    client = login(finance)
    html = client.get(f"{BASE}{requested.pk}/change/").content.decode()
    title = f"withdrawal #{requested.pk} 4.000000 USDC (requested)"
    assert str(requested) == title and f"<h2>{title}</h2>" in html
    assert "4000000" not in html and "minor units" not in html
    assert '<span class="money">4.000000 USDC</span>' in html  # the amount field
    assert "<th>Amount</th>" in html and "<td>-4.000000 USDC</td>" in html and "<td>4.000000 USDC</td>" in html
    hold = Entry.objects.filter(journal__reference=f"withdrawal:{requested.pk}:hold").order_by("amount_u")
    assert [str(e).split(" ", 1)[1] for e in hold] == ["-4.000000 USDC", "+4.000000 USDC"]

    action = client.get(f"{BASE}{requested.pk}/act/reject/").content.decode()
    assert f"{requested.user.email} &middot; 4.000000 USDC &middot;" in action

    usd = WithdrawalFactory.create(amount_u=12_345, currency="USD", provider="stripe")
    assert str(usd) == f"withdrawal #{usd.pk} $123.45 (requested)"
    assert (
        f"<h2>withdrawal #{usd.pk} $123.45 (requested)</h2>" in client.get(f"{BASE}{usd.pk}/change/").content.decode()
    )
