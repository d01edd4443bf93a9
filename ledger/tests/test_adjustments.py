"""Manual adjustments: maker-checker, one journal on approval, refusals change nothing."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger import services
from ledger.adjustments import AdjustmentRefused, adjustment_decide, adjustment_propose
from ledger.errors import InsufficientFunds, UnbalancedJournal
from ledger.models import Account, Adjustment, Entry, Journal
from ops.errors import Forbidden
from ops.models import AuditRecord

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    return (tuple(Account.objects.order_by("pk").values_list("balance_u", flat=True)), Journal.objects.count(),
            Entry.objects.count(), tuple(Adjustment.objects.order_by("pk").values_list("status", flat=True)))


@pytest.fixture
def books(player: Any, fund: Any) -> dict[str, Account]:
    fund(player, 1_000)
    return {"player": services.user_account(user=player, currency="USDC"),
            "house": services.house_account(currency="USDC")}


def test_proposal_moves_nothing_and_a_second_operator_posts_it(
    books: dict[str, Account], make_staff: Any, assert_ledger_ok: Any
) -> None:
    maker, checker = make_staff(role="finance"), make_staff(role="finance")
    before = snapshot()[:3]
    proposal = adjustment_propose(legs=[(books["player"].pk, -300), (books["house"].pk, 300)],
                                  reason="fee charged by hand, ticket 12", acting_user=maker)
    assert snapshot()[:3] == before
    with pytest.raises(AdjustmentRefused, match="second operator"):
        adjustment_decide(adjustment_id=proposal.pk, approve=True, reason="self", acting_user=maker)
    approved = adjustment_decide(adjustment_id=proposal.pk, approve=True, reason="checked", acting_user=checker)
    assert approved.status == "approved" and approved.journal.type == "adjustment"
    assert Account.objects.get(pk=books["player"].pk).balance_u == 700
    assert Account.objects.get(pk=books["house"].pk).balance_u == 300
    actions = list(AuditRecord.objects.filter(object_type="ledger.adjustment").values_list("action", "actor_label"))
    assert actions == [("ledger.adjustment.approve", checker.email), ("ledger.adjustment.propose", maker.email)]
    with pytest.raises(AdjustmentRefused, match="already approved"):
        adjustment_decide(adjustment_id=proposal.pk, approve=True, reason="again", acting_user=checker)
    assert_ledger_ok()


def test_refusals_change_nothing(books: dict[str, Account], make_staff: Any) -> None:
    maker, checker, support = make_staff(role="finance"), make_staff(role="finance"), make_staff(role="support")
    with pytest.raises(UnbalancedJournal):
        adjustment_propose(legs=[(books["player"].pk, -300), (books["house"].pk, 299)], reason="x", acting_user=maker)
    with pytest.raises(Forbidden):
        adjustment_propose(legs=[(books["player"].pk, -1), (books["house"].pk, 1)], reason="x", acting_user=support)
    with pytest.raises(AdjustmentRefused, match="reason"):
        adjustment_propose(legs=[(books["player"].pk, -1), (books["house"].pk, 1)], reason=" ", acting_user=maker)
    overdraft = adjustment_propose(legs=[(books["player"].pk, -5_000), (books["house"].pk, 5_000)], reason="too much",
                                   acting_user=maker)
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        adjustment_decide(adjustment_id=overdraft.pk, approve=True, reason="ok", acting_user=checker)
    with pytest.raises(Forbidden):
        adjustment_decide(adjustment_id=overdraft.pk, approve=True, reason="ok", acting_user=support)
    assert snapshot() == before
    rejected = adjustment_decide(adjustment_id=overdraft.pk, approve=False, reason="wrong amount", acting_user=checker)
    assert rejected.status == "rejected" and rejected.journal is None
    assert snapshot()[:3] == before[:3]


def test_adjustment_command(books: dict[str, Account], make_staff: Any) -> None:
    maker, checker = make_staff(role="finance"), make_staff(role="finance")
    out = StringIO()
    call_command("adjustment", "propose", "--leg", books["player"].name, "USDC", "-10", "--leg", "house", "USDC", "10",
                 "--reason", "goodwill reversal", "--operator", maker.email, stdout=out)
    adjustment_id = Adjustment.objects.get().pk
    assert f"adjustment {adjustment_id} proposed" in out.getvalue()
    with pytest.raises(CommandError, match="second operator"):
        call_command("adjustment", "approve", "--id", str(adjustment_id), "--reason", "ok", "--operator", maker.email)
    call_command("adjustment", "approve", "--id", str(adjustment_id), "--reason", "ok", "--operator", checker.email,
                 stdout=out)
    assert f"adjustment {adjustment_id} approved, journal adjustment:{adjustment_id}" in out.getvalue()
    with pytest.raises(CommandError, match="No account"):
        call_command("adjustment", "propose", "--leg", "nobody", "USDC", "-1", "--leg", "house", "USDC", "1",
                     "--reason", "x", "--operator", maker.email)
