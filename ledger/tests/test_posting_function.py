"""The one-statement posting (`ledger_post`, migration 0005): every refusal leaves the ledger as it was."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from ledger import services
from ledger.errors import CurrencyMismatch, InsufficientFunds, InvalidAccount, ReferenceConflict
from ledger.models import Account, Entry, Journal
from ledger.services import Leg
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db
ACTOR = SystemActor("test")


def snapshot() -> tuple:
    return (
        tuple(Account.objects.order_by("pk").values_list("pk", "balance_u")),
        tuple(Journal.objects.order_by("pk").values_list("pk", "reference")),
        Entry.objects.count(),
    )


@pytest.fixture
def books(player: Any) -> dict[str, Account]:
    psp = services.external_account(provider="stripe", currency="USDC")
    available = services.user_account(user=player, currency="USDC")
    services.transfer(source=psp, destination=available, amount_u=1_000, type="deposit", reference="seed", actor=ACTOR)
    return {
        "psp": psp,
        "available": available,
        "held": services.user_account(user=player, currency="USDC", kind=Account.Kind.USER_HELD),
        "usd": services.external_account(provider="stripe", currency="USD"),
    }


def test_insufficient_funds_is_refused_with_the_balance_and_changes_nothing(books: dict[str, Account]) -> None:
    before = snapshot()
    with pytest.raises(InsufficientFunds) as caught:
        services.transfer(
            source=books["available"], destination=books["held"], amount_u=1_001, type="t", reference="o", actor=ACTOR
        )
    assert caught.value.extra == {"account": books["available"].name, "balance_u": 1_000, "required_u": 1_001}
    assert snapshot() == before


def test_a_leg_whose_account_is_in_another_currency_is_refused(books: dict[str, Account]) -> None:
    """The caller's Account object says USD; the row is USDC: the database's word is the one that counts."""
    stale = Account(pk=books["held"].pk, name=books["held"].name, currency="USD")
    before = snapshot()
    with pytest.raises(CurrencyMismatch, match=books["held"].name):
        services.journal_post(type="t", reference="cm", legs=[Leg(books["usd"], -5), Leg(stale, 5)], actor=ACTOR)
    assert snapshot() == before


def test_an_unknown_account_is_refused(books: dict[str, Account]) -> None:
    ghost = Account(pk=10**12, name="ghost", currency="USDC")
    before = snapshot()
    with pytest.raises(InvalidAccount, match="does not exist"):
        services.journal_post(type="t", reference="ghost", legs=[Leg(books["psp"], -5), Leg(ghost, 5)], actor=ACTOR)
    assert snapshot() == before


def test_a_reference_reused_with_other_legs_is_a_conflict_even_when_funds_are_short(
    books: dict[str, Account],
) -> None:
    services.transfer(
        source=books["available"], destination=books["held"], amount_u=600, type="t", reference="r", actor=ACTOR
    )
    before = snapshot()
    with pytest.raises(ReferenceConflict):  # 600 more would overdraw, but the reference decides first
        services.transfer(
            source=books["available"], destination=books["held"], amount_u=601, type="t", reference="r", actor=ACTOR
        )
    with pytest.raises(ReferenceConflict):
        services.transfer(
            source=books["psp"], destination=books["held"], amount_u=600, type="t", reference="r", actor=ACTOR
        )
    assert snapshot() == before


def test_a_refusal_inside_a_callers_transaction_leaves_it_usable(books: dict[str, Account]) -> None:
    before = snapshot()
    with transaction.atomic():
        with pytest.raises(InsufficientFunds):
            services.transfer(
                source=books["available"],
                destination=books["held"],
                amount_u=5_000,
                type="t",
                reference="inner",
                actor=ACTOR,
            )
        journal = services.transfer(
            source=books["available"], destination=books["held"], amount_u=5, type="t", reference="after", actor=ACTOR
        )
    assert Journal.objects.get(reference="after").pk == journal.pk
    assert not Journal.objects.filter(reference="inner").exists()
    assert Account.objects.get(pk=books["held"].pk).balance_u == 5
    assert snapshot()[2] == before[2] + 2


def test_a_posted_journal_reads_back_as_it_was_returned(books: dict[str, Account]) -> None:
    journal = services.transfer(
        source=books["available"],
        destination=books["held"],
        amount_u=7,
        type="hold",
        reference="rb",
        actor=ACTOR,
        metadata={"why": "test"},
    )
    stored = Journal.objects.get(pk=journal.pk)
    for field in ("type", "reference", "fingerprint", "metadata", "actor_id", "actor_label", "reverses_id"):
        assert getattr(journal, field) == getattr(stored, field), field
    assert journal.created_at == stored.created_at
    assert journal.replayed is False


def test_the_function_returns_refusals_without_writing(books: dict[str, Account]) -> None:
    """Called directly: a refusal is a status, nothing is written, and the transaction goes on."""
    before = snapshot()
    pair = [books["available"].pk, books["held"].pk]
    cases = [
        ("new-1", pair, ["USDC", "USDC"], [-5_000, 5_000], "insufficient_funds"),
        ("new-2", pair, ["USDC", "USD"], [-5, 5], "currency_mismatch"),
        ("new-3", [books["available"].pk, 10**12], ["USDC", "USDC"], [-5, 5], "unknown_account"),
        ("seed", pair, ["USDC", "USDC"], [-5, 5], "reference_conflict"),
    ]
    with connection.cursor() as cursor:
        for reference, ids, currencies, amounts, expected in cases:
            cursor.execute(
                "SELECT status FROM ledger_post('t', %s, 'other', '{}'::jsonb, NULL, 'test', NULL, "
                "%s::bigint[], %s::varchar[], %s::bigint[])",
                [reference, ids, currencies, amounts],
            )
            assert cursor.fetchone()[0] == expected
    assert snapshot() == before
