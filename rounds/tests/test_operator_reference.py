"""Whatever decides an outcome takes two operators (issue 20, item 2): a reference close entered by hand.

`open_round --reference X --reason R --operator a@` used to open the round at X with one operator. Now it is a
maker-checker proposal with its evidence: no round exists until a different operator approves, and the
approval opens it (re-checking everything). The oracle opening the round first cancels the proposal.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ops.approvals import SecondOperatorRequired, decision_approve
from ops.errors import Forbidden
from ops.models import AuditRecord, Proposal
from payouts.tests.helpers import snapshot  # every balance, row and state a refusal must leave as it was
from rounds import errors
from rounds.domain.calendar import session_times
from rounds.models import Round
from rounds.overrides import REFERENCE_KIND, reference_propose
from rounds.services import round_open
from rounds.tasks import rounds_tick

pytestmark = pytest.mark.django_db

CODE = "20261130"
FRIDAY = date(2026, 11, 27)  # the reference session of Monday 2026-11-30's round
FINAL_AT = session_times(day=FRIDAY).settle_after_utc


def open_round(*args: str) -> str:
    out = StringIO()
    call_command("open_round", *args, stdout=out)
    return out.getvalue()


def nothing_opened() -> None:
    assert not Round.objects.filter(code=CODE).exists()
    assert not AuditRecord.objects.filter(action="rounds.open").exists()


@pytest.fixture
def oracle_down(clock: Any, prices: Any) -> None:
    """Friday's close is final, but no source answers: the oracle cannot open Monday's round."""
    clock.set(FINAL_AT + timedelta(minutes=1))
    with pytest.raises(CommandError, match="rounds/reference-unavailable"):
        open_round("--code", CODE)


def test_one_operator_cannot_open_a_round_at_their_own_reference(
    oracle_down: None, make_staff: Any, make_player: Any
) -> None:
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    support = make_staff(role="support")

    # The attack: one operator, a reference and a reason. Now a proposal; no round, no bet possible.
    out = open_round(
        "--code", CODE, "--reference", "19000.10", "--evidence", "nasdaq.com close page", "--reason", "oracle down",
        "--operator", alice.email,
    )  # fmt: skip
    proposal = Proposal.objects.get(kind=REFERENCE_KIND)
    assert f"Proposal {proposal.pk}" in out and f"open_round --approve {proposal.pk}" in out
    assert proposal.needs_second_operator and proposal.payload == {"reference_close": "19000.1"}
    assert proposal.evidence == "nasdaq.com close page" and proposal.reason == "oracle down"
    nothing_opened()

    # Refusals, each one line, nothing changed: the same operator approving, no evidence, no operator named,
    # a player, an operator without the permission, an operator calling the opening service with a price.
    frozen = snapshot()
    with pytest.raises(SecondOperatorRequired):
        round_open(code=CODE, acting_user=alice, reference_close=Decimal("19000.10"), reason="oracle down")
    with pytest.raises(CommandError) as refused:
        open_round("--approve", str(proposal.pk), "--operator", alice.email)
    assert str(refused.value).startswith("refused: approvals/second-operator-required: ")
    with pytest.raises(SecondOperatorRequired):
        decision_approve(proposal_id=proposal.pk, acting_user=alice)
    with pytest.raises(CommandError, match="rounds/reason-required"):
        open_round("--code", CODE, "--reference", "19000", "--reason", "r", "--operator", bob.email)
    with pytest.raises(CommandError, match="--operator is required"):
        open_round("--code", CODE, "--reference", "19000", "--evidence", "e", "--reason", "r")
    player = make_player()
    with pytest.raises(CommandError, match="not an active operator"):
        open_round("--approve", str(proposal.pk), "--operator", player.email)
    with pytest.raises(Forbidden):
        decision_approve(proposal_id=proposal.pk, acting_user=player)
    with pytest.raises(Forbidden):
        decision_approve(proposal_id=proposal.pk, acting_user=support)
    assert list(Proposal.objects.values_list("kind", "state")) == [(REFERENCE_KIND, Proposal.State.PENDING)]
    assert snapshot() == frozen
    nothing_opened()

    # A second, different operator approves: the round opens at that reference, both names audited.
    out = open_round("--approve", str(proposal.pk), "--reason", "same close on two sources", "--operator", bob.email)
    assert f"Opened round {CODE}" in out and "reference: 19000.1 (close of 2026-11-27)" in out
    round_obj = Round.objects.get(code=CODE)
    assert (round_obj.status, round_obj.reference_close) == (Round.Status.OPEN, "19000.1")
    opened = AuditRecord.objects.get(action="rounds.open")
    assert opened.actor_label == bob.email
    assert (opened.data["proposed_by"], opened.data["approved_by"]) == (alice.email, bob.email)
    assert (opened.reason, opened.data["proposal_reason"]) == ("same close on two sources", "oracle down")
    assert "nasdaq.com close page" in opened.data["reference_source"]
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.APPLIED


def test_the_oracle_opening_first_cancels_the_proposal(oracle_down: None, prices: Any, make_staff: Any) -> None:
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    proposal = reference_propose(
        code=CODE, reference="18000", reason="oracle down", evidence="a screenshot", acting_user=alice
    )
    prices.set(FRIDAY, "19000.10")  # the oracle is back: beat opens the round from it
    assert rounds_tick()["opened"] == [CODE]
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.CANCELLED
    with pytest.raises(CommandError, match="already cancelled"):
        open_round("--approve", str(proposal.pk), "--operator", bob.email)
    assert Round.objects.get(code=CODE).reference_close == "19000.1"  # the oracle's, not the proposal's
    with pytest.raises(errors.RoundAlreadyOpen):  # and no new proposal on an open round
        reference_propose(code=CODE, reference="18000", reason="r", evidence="e", acting_user=alice)


def test_the_approval_re_checks_the_opening(oracle_down: None, clock: Any, make_staff: Any) -> None:
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    proposal = reference_propose(code=CODE, reference="19000", reason="oracle down", evidence="e", acting_user=alice)
    clock.set(session_times(day=date(2026, 11, 30)).lock_utc)  # nobody approved before Monday's lock
    frozen = snapshot()
    with pytest.raises(CommandError, match="rounds/too-late"):
        open_round("--approve", str(proposal.pk), "--reason", "late", "--operator", bob.email)
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.PENDING
    assert snapshot() == frozen
    nothing_opened()


def test_a_reference_for_a_session_not_final_is_refused_at_proposal(clock: Any, make_staff: Any) -> None:
    clock.set(datetime(2026, 11, 27, 7, tzinfo=UTC))
    with pytest.raises(errors.ReferenceNotFinal):
        reference_propose(
            code=CODE, reference="19000", reason="r", evidence="e", acting_user=make_staff(role="finance")
        )
    assert not Proposal.objects.exists()
    nothing_opened()
