"""The rounds console: read-only pages, operator price entry, forced results under four eyes, the VOID stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from ledger.models import Account
from ops.approvals import SecondOperatorRequired, decision_approve
from ops.errors import Forbidden
from ops.models import AuditRecord, Proposal
from rounds import errors
from rounds.models import OracleObservation, Round
from rounds.overrides import force_result_propose

pytestmark = pytest.mark.django_db


@pytest.fixture
def locked_round(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
) -> tuple[Round, list[Any]]:
    round_obj = open_round("20250908")
    bets = [place(round_obj, "UP", 2_000_000), place(round_obj, "DOWN", 6_000_000)]
    lock_and_reach_settlement(round_obj)
    round_obj.refresh_from_db()
    return round_obj, bets


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_force_result_needs_a_second_operator(
    locked_round: Any,
    make_staff: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj, bets = locked_round
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    proposal = force_result_propose(
        code=round_obj.code,
        result="UP",
        reason="oracle outage",
        evidence="nasdaq.com 16:00 close 101.2",
        acting_user=alice,
    )
    assert proposal.state == Proposal.State.PENDING
    with pytest.raises(SecondOperatorRequired):
        decision_approve(proposal_id=proposal.pk, acting_user=alice)
    round_obj.refresh_from_db()
    assert round_obj.status == Round.Status.LOCKED
    assert Account.objects.get(pk=round_obj.pool_account_id).balance_u == 8_000_000

    decision_approve(proposal_id=proposal.pk, acting_user=bob, reason="close checked")
    settled = Round.objects.get(pk=round_obj.pk)

    assert settled.status == Round.Status.SETTLED and settled.result == "UP"
    assert settled.forced is not None
    assert settled.forced["operator"] == alice.email and settled.forced["approved_by"] == bob.email
    assert Account.objects.get(pk=bets[0].account_id).balance_u == 8_000_000 - 80_000
    actions = set(AuditRecord.objects.values_list("action", "actor_label"))
    assert {("approvals.propose", alice.email), ("approvals.apply", bob.email), ("rounds.settle", bob.email)} <= actions
    with pytest.raises(Exception, match="already applied"):
        decision_approve(proposal_id=proposal.pk, acting_user=bob)
    assert_ledger_ok()


def test_force_result_refused_for_support_and_for_open_rounds(
    open_round: Callable[..., Any],
    make_staff: Callable[..., Any],
) -> None:
    round_obj = open_round("20250908")
    support, finance = make_staff(role="support"), make_staff(role="finance")
    with pytest.raises(Forbidden):
        force_result_propose(code=round_obj.code, result="UP", reason="r", evidence="e", acting_user=support)
    with pytest.raises(errors.RoundNotLocked):
        force_result_propose(code=round_obj.code, result="UP", reason="r", evidence="e", acting_user=finance)
    with pytest.raises(errors.InvalidResult):
        force_result_propose(code=round_obj.code, result="VOID", reason="r", evidence="e", acting_user=finance)
    assert Proposal.objects.count() == 0


def test_admin_pages_and_forms(locked_round: Any, make_staff: Callable[..., Any]) -> None:
    round_obj, bets = locked_round
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    a, b = login(alice), login(bob)

    assert a.get("/admin/rounds/round/").status_code == 200
    page = a.get(f"/admin/rounds/round/{round_obj.pk}/change/")
    assert page.status_code == 200 and b"Propose forced result" in page.content
    assert all(str(bet.bet_id).encode() in page.content for bet in bets)  # bets inline, read-only
    assert round_obj.salt.encode() not in page.content
    assert a.post(f"/admin/rounds/round/{round_obj.pk}/change/", {"fee_bps": 0}).status_code == 403
    assert a.get("/admin/rounds/round/999999/force/").status_code == 404  # a missing round: 404, no 500

    a.post(f"/admin/rounds/round/{round_obj.pk}/enter-price/", {"price": "101.5", "evidence": "nasdaq.com"})
    price = Proposal.objects.get(kind="rounds.operator_close")
    assert not OracleObservation.objects.filter(kind="operator").exists()  # a proposal until bob approves
    assert b"Approve (second operator)" in b.get(f"/admin/rounds/round/{round_obj.pk}/change/").content
    b.post(f"/admin/ops/proposal/{price.pk}/decide/approve/", {"reason": "same close on nasdaq.com"})
    assert OracleObservation.objects.get(kind="operator").price == "101.5"

    a.post(f"/admin/rounds/round/{round_obj.pk}/force/", {"result": "DOWN", "reason": "bad data", "evidence": "x"})
    proposal = Proposal.objects.get(kind="rounds.force_result")
    mine = a.get(f"/admin/rounds/round/{round_obj.pk}/change/").content
    assert b"Approve (second operator)" not in mine and b"you proposed it" in mine
    assert b"Approve (second operator)" in b.get(f"/admin/rounds/round/{round_obj.pk}/change/").content
    a.post(f"/admin/ops/proposal/{proposal.pk}/decide/approve/", {"reason": ""})
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED  # same operator: refused
    b.post(f"/admin/ops/proposal/{proposal.pk}/decide/approve/", {"reason": "checked"})
    settled = Round.objects.get(pk=round_obj.pk)
    assert (settled.status, settled.result) == (Round.Status.SETTLED, "DOWN")
    page = b.get(f"/admin/rounds/round/{round_obj.pk}/change/")
    assert b"Settlement breakdown" in page.content


def test_admin_void_is_the_one_operator_emergency_stop(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    make_staff: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    bet = place(round_obj, "UP", 3_000_000)
    place(round_obj, "DOWN", 1_000_000)
    finance = make_staff(role="finance")
    client = login(finance)
    assert b"Void (emergency stop)" in client.get(f"/admin/rounds/round/{round_obj.pk}/change/").content
    client.post(f"/admin/rounds/round/{round_obj.pk}/void/", {"reason": "feed corrupted"})
    voided = Round.objects.get(pk=round_obj.pk)
    assert (voided.status, voided.void_reason) == (Round.Status.VOID, "CANCELLED")
    assert Account.objects.get(pk=bet.account_id).balance_u == 3_000_000
    assert AuditRecord.objects.filter(
        action="rounds.settle", actor_label=finance.email, reason="feed corrupted"
    ).exists()
    assert_ledger_ok()


def test_bet_title_and_the_action_page_pools_are_in_major_units(
    open_round: Callable[..., Any], place: Callable[..., Any], make_staff: Callable[..., Any]
) -> None:
    """A bet's change page title (`__str__`) and a round action page's pools, as every money column writes them."""
    round_obj = open_round("20250908")
    bet = place(round_obj, "UP", 2_500_000)
    client = login(make_staff(role="finance"))
    title = f"bet {bet.bet_id} UP 2.500000 USDC"
    assert str(bet) == title
    assert f"<h2>{title}</h2>" in client.get(f"/admin/rounds/bet/{bet.pk}/change/").content.decode()
    page = client.get(f"/admin/rounds/round/{round_obj.pk}/void/").content.decode()
    assert "UP 2.500000 USDC / DOWN 0.000000 USDC" in page and "2500000" not in page
