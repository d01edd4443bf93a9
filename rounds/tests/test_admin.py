"""The rounds console: read-only pages, operator price entry, and the four-eyes forced result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from ledger.models import Account
from ops.models import AuditRecord
from rounds import errors
from rounds.models import ForceResultRequest, OracleObservation, Round
from rounds.services import force_result_approve, force_result_propose

pytestmark = pytest.mark.django_db


@pytest.fixture
def locked_round(
    open_round: Callable[..., Any], place: Callable[..., Any], lock_and_reach_settlement: Callable[..., Any],
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
    locked_round: Any, make_staff: Callable[..., Any], assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj, bets = locked_round
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    proposal = force_result_propose(code=round_obj.code, result="UP", reason="oracle outage",
                                    evidence="nasdaq.com 16:00 close 101.2", acting_user=alice)
    with pytest.raises(errors.FourEyesRequired):
        force_result_approve(request_id=proposal.pk, acting_user=alice)
    round_obj.refresh_from_db()
    assert round_obj.status == Round.Status.LOCKED
    assert Account.objects.get(pk=round_obj.pool_account_id).balance_u == 8_000_000

    settled = force_result_approve(request_id=proposal.pk, acting_user=bob)

    assert settled.status == Round.Status.SETTLED and settled.result == "UP"
    assert settled.forced["operator"] == alice.email and settled.forced["approved_by"] == bob.email
    assert Account.objects.get(pk=bets[0].account_id).balance_u == 8_000_000 - 80_000
    actions = set(AuditRecord.objects.values_list("action", "actor_label"))
    assert {("rounds.force_result.propose", alice.email), ("rounds.force_result.approve", bob.email)} <= actions
    with pytest.raises(errors.ForceRequestNotPending):
        force_result_approve(request_id=proposal.pk, acting_user=bob)
    assert_ledger_ok()


def test_force_result_refused_for_support_and_for_open_rounds(
    open_round: Callable[..., Any], make_staff: Callable[..., Any],
) -> None:
    round_obj = open_round("20250908")
    support, finance = make_staff(role="support"), make_staff(role="finance")
    with pytest.raises(errors.NotAllowed):
        force_result_propose(code=round_obj.code, result="VOID", reason="r", evidence="e", acting_user=support)
    with pytest.raises(errors.RoundNotLocked):
        force_result_propose(code=round_obj.code, result="VOID", reason="r", evidence="e", acting_user=finance)
    assert ForceResultRequest.objects.count() == 0


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

    a.post(f"/admin/rounds/round/{round_obj.pk}/enter-price/", {"price": "101.5", "evidence": "nasdaq.com"})
    assert OracleObservation.objects.get(kind="operator").price == "101.5"

    a.post(f"/admin/rounds/round/{round_obj.pk}/force/", {"result": "VOID", "reason": "bad data", "evidence": "x"})
    proposal = ForceResultRequest.objects.get()
    a.post(f"/admin/rounds/round/force-request/{proposal.pk}/approve/")
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED  # same operator: refused
    b.post(f"/admin/rounds/round/force-request/{proposal.pk}/approve/")
    settled = Round.objects.get(pk=round_obj.pk)
    assert (settled.status, settled.void_reason) == (Round.Status.VOID, "CANCELLED")
    page = b.get(f"/admin/rounds/round/{round_obj.pk}/change/")
    assert b"Settlement breakdown" in page.content
