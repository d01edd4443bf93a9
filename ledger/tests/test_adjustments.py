"""Manual adjustments through the maker-checker: one journal on approval, refusals change nothing."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger import services
from ledger.decisions import adjustment_propose
from ledger.errors import InsufficientFunds, UnbalancedJournal
from ledger.models import Account, Entry, Journal
from ops.approvals import ReasonRequired, SecondOperatorRequired, decision_approve, decision_reject
from ops.errors import Forbidden
from ops.models import AuditRecord, Proposal

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    return (
        tuple(Account.objects.order_by("pk").values_list("balance_u", flat=True)),
        Journal.objects.count(),
        Entry.objects.count(),
        tuple(Proposal.objects.order_by("pk").values_list("state", flat=True)),
    )


@pytest.fixture
def books(player: Any, fund: Any, settings: Any) -> dict[str, Account]:
    settings.FOUR_EYES_THRESHOLDS = {"USDC": "0.000100"}  # 100 micro USDC: the amounts below need two
    fund(player, 1_000)
    return {
        "player": services.user_account(user=player, currency="USDC"),
        "house": services.house_account(currency="USDC"),
    }


def test_proposal_moves_nothing_and_a_second_operator_posts_it(
    books: dict[str, Account], make_staff: Any, assert_ledger_ok: Any
) -> None:
    maker, checker = make_staff(role="finance"), make_staff(role="finance")
    before = snapshot()[:3]
    proposal = adjustment_propose(
        legs=[(books["player"].pk, -300), (books["house"].pk, 300)],
        reason="fee charged by hand, ticket 12",
        acting_user=maker,
    )
    assert proposal.state == Proposal.State.PENDING and snapshot()[:3] == before
    with pytest.raises(SecondOperatorRequired, match="different operator"):
        decision_approve(proposal_id=proposal.pk, reason="self", acting_user=maker)
    assert snapshot()[:3] == before
    approved = decision_approve(proposal_id=proposal.pk, reason="checked", acting_user=checker)
    assert approved.state == Proposal.State.APPLIED and approved.result == {"journal": f"adjustment:{proposal.pk}"}
    assert Journal.objects.get(reference=f"adjustment:{proposal.pk}").actor == checker
    assert Account.objects.get(pk=books["player"].pk).balance_u == 700
    assert Account.objects.get(pk=books["house"].pk).balance_u == 300
    actions = list(
        AuditRecord.objects.filter(object_type="ops.proposal").order_by("id").values_list("action", "actor_label")
    )
    assert actions == [("approvals.propose", maker.email), ("approvals.apply", checker.email)]
    with pytest.raises(Exception, match="already applied"):
        decision_approve(proposal_id=proposal.pk, reason="again", acting_user=checker)
    assert_ledger_ok()


def test_refusals_change_nothing(books: dict[str, Account], make_staff: Any) -> None:
    maker, checker, support = make_staff(role="finance"), make_staff(role="finance"), make_staff(role="support")
    before = snapshot()
    with pytest.raises(UnbalancedJournal):
        adjustment_propose(legs=[(books["player"].pk, -300), (books["house"].pk, 299)], reason="x", acting_user=maker)
    with pytest.raises(Forbidden):
        adjustment_propose(legs=[(books["player"].pk, -1), (books["house"].pk, 1)], reason="x", acting_user=support)
    with pytest.raises(ReasonRequired):
        adjustment_propose(legs=[(books["player"].pk, -1), (books["house"].pk, 1)], reason=" ", acting_user=maker)
    assert snapshot() == before
    overdraft = adjustment_propose(
        legs=[(books["player"].pk, -5_000), (books["house"].pk, 5_000)], reason="too much", acting_user=maker
    )
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        decision_approve(proposal_id=overdraft.pk, reason="ok", acting_user=checker)
    with pytest.raises(Forbidden):
        decision_approve(proposal_id=overdraft.pk, reason="ok", acting_user=support)
    assert snapshot() == before
    rejected = decision_reject(proposal_id=overdraft.pk, reason="wrong amount", acting_user=checker)
    assert rejected.state == Proposal.State.REJECTED and rejected.result == {}
    assert snapshot()[:3] == before[:3]


def test_adjustment_command(books: dict[str, Account], player: Any, make_staff: Any) -> None:
    maker, checker = make_staff(role="finance"), make_staff(role="finance")
    out = StringIO()
    call_command(
        "adjustment",
        "propose",
        "--leg",
        books["player"].name,
        "USDC",
        "-200",
        "--leg",
        "house",
        "USDC",
        "200",
        "--reason",
        "goodwill reversal",
        "--operator",
        maker.email,
        stdout=out,
    )
    adjustment_id = Proposal.objects.get().pk
    assert f"adjustment {adjustment_id} proposed" in out.getvalue()
    with pytest.raises(CommandError, match="different operator"):
        call_command("adjustment", "approve", "--id", str(adjustment_id), "--reason", "ok", "--operator", maker.email)
    call_command(
        "adjustment", "approve", "--id", str(adjustment_id), "--reason", "ok", "--operator", checker.email, stdout=out
    )
    assert f"adjustment {adjustment_id} applied, journal adjustment:{adjustment_id}" in out.getvalue()
    with pytest.raises(CommandError, match="No account"):
        call_command(
            "adjustment",
            "propose",
            "--leg",
            "nobody",
            "USDC",
            "-1",
            "--leg",
            "house",
            "USDC",
            "1",
            "--reason",
            "x",
            "--operator",
            maker.email,
        )
    with pytest.raises(CommandError, match="not an active operator"):
        call_command(
            "adjustment",
            "propose",
            "--leg",
            "house",
            "USDC",
            "-1",
            "--leg",
            books["player"].name,
            "USDC",
            "1",
            "--reason",
            "x",
            "--operator",
            player.email,  # the owner of books["player"]
        )
