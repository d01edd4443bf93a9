"""Postings: what is accepted, what is refused, and that a refusal changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import services
from ledger.errors import (
    AlreadyReversed,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAccount,
    InvalidAmount,
    InvalidReference,
    ReasonRequired,
    ReferenceConflict,
    UnbalancedJournal,
    UnknownCurrency,
)
from ledger.models import Account, Entry, Journal
from ledger.services import Leg
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    """Everything a posting could change: balances, journal and entry rows."""
    return (
        tuple(Account.objects.order_by("pk").values_list("pk", "balance_u")),
        Journal.objects.count(),
        Entry.objects.count(),
    )


@pytest.fixture
def books(player: Any) -> dict[str, Account]:
    psp = services.external_account(provider="stripe", currency="USDC")
    available = services.user_account(user=player, currency="USDC")
    services.transfer(
        source=psp, destination=available, amount_u=1_000, type="deposit", reference="seed-1", actor=SystemActor("test")
    )
    return {
        "psp": psp,
        "available": available,
        "held": services.user_account(user=player, currency="USDC", kind=Account.Kind.USER_HELD),
        "house": services.house_account(currency="USDC"),
        "usd": services.external_account(provider="stripe", currency="USD"),
    }


def test_transfer_moves_money_and_keeps_invariants(books: dict[str, Account], assert_ledger_ok: Any) -> None:
    journal = services.transfer(
        source=books["available"],
        destination=books["house"],
        amount_u=400,
        type="fee",
        reference="w-1",
        actor=SystemActor("test"),
    )
    assert journal.replayed is False
    assert Account.objects.get(pk=books["available"].pk).balance_u == 600
    assert Account.objects.get(pk=books["house"].pk).balance_u == 400
    assert sorted(journal.entries.values_list("amount_u", flat=True)) == [-400, 400]
    assert_ledger_ok()


def test_same_reference_same_contents_is_a_replay(books: dict[str, Account]) -> None:
    first = services.transfer(
        source=books["available"],
        destination=books["held"],
        amount_u=5,
        type="t",
        reference="r",
        actor=SystemActor("test"),
    )
    before = snapshot()
    again = services.transfer(
        source=books["available"],
        destination=books["held"],
        amount_u=5,
        type="t",
        reference="r",
        actor=SystemActor("test"),
    )
    assert again.pk == first.pk and again.replayed is True
    assert snapshot() == before


def test_replay_is_recognised_even_when_funds_are_now_short(books: dict[str, Account]) -> None:
    services.transfer(
        source=books["available"],
        destination=books["held"],
        amount_u=1_000,
        type="t",
        reference="all",
        actor=SystemActor("test"),
    )
    before = snapshot()
    again = services.transfer(
        source=books["available"],
        destination=books["held"],
        amount_u=1_000,
        type="t",
        reference="all",
        actor=SystemActor("test"),
    )
    assert again.replayed is True
    assert snapshot() == before


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (0, InvalidAmount),
        (-5, InvalidAmount),
        (1.5, InvalidAmount),
        ("100", InvalidAmount),
        (True, InvalidAmount),
        (None, InvalidAmount),
        (10**18, InvalidAmount),
        (1_001, InsufficientFunds),
    ],
)
def test_bad_transfer_amounts_are_refused_and_change_nothing(
    books: dict[str, Account], amount: Any, error: type
) -> None:
    before = snapshot()
    with pytest.raises(error):
        services.transfer(
            source=books["available"],
            destination=books["held"],
            amount_u=amount,
            type="t",
            reference="bad",
            actor=SystemActor("test"),
        )
    assert snapshot() == before


@pytest.mark.parametrize("reference", ["", "r" * 201])
def test_a_bad_reference_is_refused_as_a_reference_and_changes_nothing(
    books: dict[str, Account], reference: str
) -> None:
    before = snapshot()
    with pytest.raises(InvalidReference, match="reference of 1 to 200 characters") as refused:
        services.transfer(
            source=books["available"],
            destination=books["held"],
            amount_u=5,
            type="t",
            reference=reference,
            actor=SystemActor("test"),
        )
    assert refused.value.code == "ledger/invalid-reference"
    assert snapshot() == before


def test_a_transfer_to_the_same_account_is_refused_as_an_account(books: dict[str, Account]) -> None:
    before = snapshot()
    with pytest.raises(InvalidAccount, match="two different accounts") as refused:
        services.transfer(
            source=books["available"],
            destination=books["available"],
            amount_u=5,
            type="t",
            reference="same",
            actor=SystemActor("test"),
        )
    assert refused.value.code == "ledger/invalid-account"
    assert snapshot() == before


def test_unbalanced_legs_are_refused(books: dict[str, Account]) -> None:
    before = snapshot()
    with pytest.raises(UnbalancedJournal, match="off by USDC \\+1"):
        services.journal_post(
            type="t",
            reference="u",
            legs=[Leg(books["available"], -5), Leg(books["held"], 6)],
            actor=SystemActor("test"),
        )
    with pytest.raises(UnbalancedJournal, match="at least two"):
        services.journal_post(type="t", reference="u", legs=[Leg(books["psp"], 0)], actor=SystemActor("test"))
    assert snapshot() == before


def test_legs_in_two_currencies_must_each_balance(books: dict[str, Account]) -> None:
    before = snapshot()
    with pytest.raises(UnbalancedJournal):
        services.journal_post(
            type="t", reference="x", legs=[Leg(books["psp"], -5), Leg(books["usd"], 5)], actor=SystemActor("test")
        )
    with pytest.raises(CurrencyMismatch):
        services.transfer(
            source=books["psp"],
            destination=books["usd"],
            amount_u=5,
            type="t",
            reference="x",
            actor=SystemActor("test"),
        )
    assert snapshot() == before


def test_unknown_currency_is_refused(player: Any) -> None:
    before = snapshot()
    with pytest.raises(UnknownCurrency):
        services.user_account(user=player, currency="DOGE")
    assert snapshot() == before


def test_reused_reference_with_other_contents_is_refused(books: dict[str, Account]) -> None:
    services.transfer(
        source=books["available"],
        destination=books["held"],
        amount_u=5,
        type="t",
        reference="r",
        actor=SystemActor("test"),
    )
    before = snapshot()
    with pytest.raises(ReferenceConflict):
        services.transfer(
            source=books["available"],
            destination=books["held"],
            amount_u=6,
            type="t",
            reference="r",
            actor=SystemActor("test"),
        )
    with pytest.raises(ReferenceConflict):
        services.transfer(
            source=books["available"],
            destination=books["house"],
            amount_u=5,
            type="t",
            reference="r",
            actor=SystemActor("test"),
        )
    assert snapshot() == before


def test_overdraft_names_the_account_and_changes_nothing(books: dict[str, Account]) -> None:
    before = snapshot()
    with pytest.raises(InsufficientFunds) as caught:
        services.journal_post(
            type="settlement",
            reference="o",
            legs=[Leg(books["available"], -700), Leg(books["available"], -700), Leg(books["house"], 1_400)],
            actor=SystemActor("test"),
        )
    assert caught.value.extra["account"] == books["available"].name
    assert caught.value.extra["required_u"] == 1_400
    assert snapshot() == before


def test_external_accounts_may_go_negative(books: dict[str, Account]) -> None:
    assert Account.objects.get(pk=books["psp"].pk).balance_u == -1_000


def test_reversal_posts_the_opposite_once(books: dict[str, Account], assert_ledger_ok: Any) -> None:
    original = services.transfer(
        source=books["available"],
        destination=books["house"],
        amount_u=300,
        type="fee",
        reference="f",
        actor=SystemActor("test"),
    )
    reversal = services.journal_reverse(
        journal=original, reference="f-rev", actor=SystemActor("test"), reason="charged twice"
    )
    assert reversal.reverses_id == original.pk
    assert Account.objects.get(pk=books["available"].pk).balance_u == 1_000
    assert Account.objects.get(pk=books["house"].pk).balance_u == 0
    before = snapshot()
    with pytest.raises(AlreadyReversed):
        services.journal_reverse(journal=original, reference="f-rev-2", actor=SystemActor("test"), reason="again")
    with pytest.raises(AlreadyReversed):
        services.journal_reverse(
            journal=reversal, reference="f-rev-3", actor=SystemActor("test"), reason="undo the undo"
        )
    with pytest.raises(ReasonRequired):
        services.journal_reverse(journal=original, reference="f-rev-4", actor=SystemActor("test"), reason="  ")
    assert snapshot() == before
    assert_ledger_ok()


def test_reversal_that_would_overdraw_is_refused(books: dict[str, Account]) -> None:
    original = Journal.objects.get(reference="seed-1")
    services.transfer(
        source=books["available"],
        destination=books["house"],
        amount_u=900,
        type="bet",
        reference="spent",
        actor=SystemActor("test"),
    )
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        services.journal_reverse(
            journal=original, reference="seed-1-rev", actor=SystemActor("test"), reason="chargeback"
        )
    assert snapshot() == before


def test_journal_records_actor_and_metadata(books: dict[str, Account], player: Any, make_staff: Any) -> None:
    operator = make_staff(role="finance")
    player = books["available"].owner
    assert player is not None
    journal = services.operator_credit(
        user=player, amount_u=50, currency="USDC", actor=operator, reference="oc-1", reason="goodwill"
    )
    assert journal.actor == operator and journal.actor_label == operator.email
    assert journal.metadata["reason"] == "goodwill"
    from ops.models import AuditRecord

    record = AuditRecord.objects.get(action="ledger.operator_credit")
    assert record.actor == operator and record.reason == "goodwill"
