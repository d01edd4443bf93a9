"""The freeze is automatic (issue 20, item 3).

A failed invariant in the reconciliation run (`check_ledger --record`, the beat task) turns `payout_freeze` on
in the transaction that records the breach, audited with the invariant's name and shown on the console; payouts
are then held; one operator cannot clear it, two (maker-checker) can. Turning it on by hand stays one operator.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from ledger.models import Account, LedgerBreach, ReconciliationRun
from ledger.tasks import reconcile_ledger
from ops.actors import SystemActor
from ops.approvals import SecondOperatorRequired, decision_approve
from ops.errors import Forbidden
from ops.models import AuditRecord, Proposal, Switch
from ops.switches import CLEAR_KIND, SwitchClearNeedsTwo, switch_clear_propose, switch_is_on, switch_set
from payouts.models import Withdrawal
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request

from .helpers import balances, destination_for, snapshot

pytestmark = pytest.mark.django_db

FREEZE = Switch.Name.PAYOUT_FREEZE
BROKEN = ["balance_equals_entries", "currency_sums_to_zero"]  # what a drifted stored balance breaks
TRIPPED = ",".join(BROKEN)


def plant_imbalance(*, account_id: int, delta_u: int) -> None:
    """Plant a ledger imbalance as an insider with a raw cursor: a stored balance drifts from its entries.

    The one place the tests write money rows by hand (when the suite runs as the restricted application
    role, the owner's cursor: the application role may not).
    """
    from ops.tests.db_role_harness import as_db_owner

    with as_db_owner() as cursor:
        cursor.execute("UPDATE ledger_account SET balance_u = balance_u + %s WHERE id = %s", [delta_u, account_id])


def check_ledger_record() -> str:
    err = StringIO()
    with pytest.raises(CommandError, match="breach"):
        call_command("check_ledger", "--record", stdout=StringIO(), stderr=err)
    return err.getvalue()


def freeze_state() -> tuple[bool, str]:
    switch = Switch.objects.filter(name=FREEZE).first()
    return (switch.on, switch.tripped_by) if switch else (False, "")


def freeze_audit() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action=f"switch.{FREEZE}").order_by("id"))


@pytest.fixture
def admins(make_staff: Any) -> tuple[Any, Any]:
    return make_staff(role="admin"), make_staff(role="admin")


@pytest.fixture
def planted(funded_player: Any) -> Account:
    account = Account.objects.get(owner=funded_player, kind=Account.Kind.USER_AVAILABLE, currency="USDC")
    plant_imbalance(account_id=account.pk, delta_u=2)
    return account


def test_a_breach_turns_the_freeze_on_with_its_invariant_audited_and_on_the_console(
    planted: Account, make_staff: Any
) -> None:
    assert freeze_state() == (False, "")
    err = check_ledger_record()
    assert "BREACH [balance_equals_entries]" in err and "payout_freeze is ON" in err

    run = ReconciliationRun.objects.get()
    assert not run.ok and run.breach_count == 2
    assert sorted(LedgerBreach.objects.filter(run=run).values_list("invariant", flat=True)) == BROKEN
    assert freeze_state() == (True, TRIPPED)
    (record,) = freeze_audit()
    assert (record.actor_label, record.from_state, record.to_state) == ("reconciliation", "off", "on")
    assert record.data["invariants"] == BROKEN and record.data["run"] == run.pk
    assert record.data["automatic"] is True and "balance_equals_entries" in record.reason

    client = Client()
    client.force_login(make_staff(role="support"))
    page = client.get("/admin/").content.decode()
    assert f"automatic: failed invariant {TRIPPED}; two operators must clear it" in page
    assert f"reconciliation run {run.pk}" in page


def test_the_beat_task_trips_the_freeze_too(planted: Account) -> None:
    assert reconcile_ledger() == 2
    assert freeze_state() == (True, TRIPPED)
    assert LedgerBreach.objects.count() == 2 and len(freeze_audit()) == 1


def test_the_breach_and_the_freeze_are_one_transaction(planted: Account, monkeypatch: Any) -> None:
    """A failure after the breach and the freeze were written rolls both back: never one without the other."""
    real_save = ReconciliationRun.save

    def failing_save(self: ReconciliationRun, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("update_fields"):  # the run's closing update, after breach rows and freeze
            assert LedgerBreach.objects.filter(run=self).exists() and switch_is_on(FREEZE)  # written, uncommitted
            raise RuntimeError("disk full")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(ReconciliationRun, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        call_command("check_ledger", "--record", stdout=StringIO(), stderr=StringIO())
    assert not ReconciliationRun.objects.exists() and not LedgerBreach.objects.exists()
    assert freeze_state() == (False, "") and freeze_audit() == []


def test_payouts_are_held_while_frozen(stub: Any, planted: Account, funded_player: Any, finance: Any) -> None:
    withdrawal = withdrawal_request(
        user=funded_player, amount_u=5_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    held = balances(funded_player)
    check_ledger_record()
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "paused" and FREEZE in run.detail
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.APPROVED
    assert stub.requests == []  # the PSP was never called
    assert balances(funded_player) == held


def test_one_operator_cannot_clear_it_two_can(planted: Account, admins: tuple[Any, Any], make_player: Any) -> None:
    alice, bob = admins
    check_ledger_record()
    audits = len(freeze_audit())
    frozen = snapshot()

    # The one-operator off: refused by the service, the command and the admin form; nothing changes.
    with pytest.raises(SwitchClearNeedsTwo):
        switch_set(name=FREEZE, on=False, reason="looks fine", actor=alice)
    with pytest.raises(CommandError) as refused:
        call_command("switch", FREEZE, "off", "--reason", "looks fine", "--operator", alice.email, stdout=StringIO())
    assert str(refused.value).startswith("refused: switches/clear-needs-two-operators: ")
    client = Client()
    client.force_login(alice)
    switch = Switch.objects.get(name=FREEZE)
    page = client.post(
        f"/admin/ops/switch/{switch.pk}/change/", {"name": FREEZE, "reason": "looks fine"}, follow=True
    )  # "on" unticked
    assert page.status_code == 200 and "one operator cannot turn it off" in page.content.decode()
    assert freeze_state() == (True, TRIPPED) and len(freeze_audit()) == audits
    assert snapshot() == frozen

    # Players are not operators; the proposer cannot approve their own proposal.
    with pytest.raises(Forbidden):
        switch_clear_propose(name=FREEZE, reason="fixed", acting_user=make_player())
    out = StringIO()
    call_command(
        "switch", FREEZE, "clear", "--reason", "imbalance explained, ticket 7", "--operator", alice.email, stdout=out
    )
    proposal = Proposal.objects.get(kind=CLEAR_KIND, state=Proposal.State.PENDING)
    assert f"switch --approve {proposal.pk}" in out.getvalue() and proposal.needs_second_operator
    with pytest.raises(SecondOperatorRequired):
        decision_approve(proposal_id=proposal.pk, acting_user=alice)
    with pytest.raises(CommandError, match="approvals/second-operator-required"):
        call_command("switch", "--approve", str(proposal.pk), "--operator", alice.email, stdout=StringIO())
    assert freeze_state() == (True, TRIPPED) and len(freeze_audit()) == audits

    # A different operator approves with their own reason: off, audited with both names, both reasons, the invariant.
    with pytest.raises(CommandError, match="approvals/reason-required"):
        call_command("switch", "--approve", str(proposal.pk), "--operator", bob.email, stdout=StringIO())
    assert freeze_state() == (True, TRIPPED) and len(freeze_audit()) == audits
    call_command(
        "switch", "--approve", str(proposal.pk), "--reason", "ticket 7 read", "--operator", bob.email, stdout=StringIO()
    )
    assert freeze_state() == (False, "")
    last = freeze_audit()[-1]
    assert (last.from_state, last.to_state, last.actor_label) == ("on", "off", bob.email)
    assert last.data["invariants"] == BROKEN
    assert (last.data["proposed_by"], last.data["approved_by"]) == (alice.email, bob.email)
    assert (last.reason, last.data["proposal_reason"]) == ("ticket 7 read", "imbalance explained, ticket 7")
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.APPLIED


def test_the_admin_proposes_clearing_and_another_operator_approves(planted: Account, admins: tuple[Any, Any]) -> None:
    alice, bob = admins
    check_ledger_record()
    switch = Switch.objects.get(name=FREEZE)
    a, b = Client(), Client()
    a.force_login(alice)
    b.force_login(bob)
    assert "Propose clearing" in a.get(f"/admin/ops/switch/{switch.pk}/change/").content.decode()
    a.post(f"/admin/ops/switch/{switch.pk}/propose-clear/", {"reason": "explained"}, follow=True)
    proposal = Proposal.objects.get(kind=CLEAR_KIND)
    assert freeze_state()[0] is True
    page = b.post(f"/admin/ops/proposal/{proposal.pk}/decide/approve/", {"reason": " "})
    assert page.status_code == 200 and "This field is required" in page.content.decode()  # the checker's own reason
    assert freeze_state()[0] is True
    b.post(f"/admin/ops/proposal/{proposal.pk}/decide/approve/", {"reason": "agreed"}, follow=True)
    assert freeze_state() == (False, "")
    apply = AuditRecord.objects.get(action="approvals.apply", object_id=str(proposal.pk))
    assert (apply.actor_label, apply.reason, apply.data["proposal_reason"]) == (bob.email, "agreed", "explained")


def test_turning_it_on_by_hand_stays_one_operator(admins: tuple[Any, Any]) -> None:
    alice, _ = admins
    call_command("switch", FREEZE, "on", "--reason", "PSP degraded", stdout=StringIO())
    assert freeze_state() == (True, "")  # no invariant: the same operator (or any) may turn it off
    with pytest.raises(CommandError, match="switches/not-tripped"):
        call_command("switch", FREEZE, "clear", "--reason", "x", "--operator", alice.email, stdout=StringIO())
    switch_set(name=FREEZE, on=False, reason="PSP back", actor=SystemActor("test"))
    assert freeze_state() == (False, "")
