"""journal_post_bulk: legs from a query, with the same guards as every posting; refusals change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ledger import services
from ledger.errors import CurrencyMismatch, InsufficientFunds, ReferenceConflict, UnbalancedJournal
from ledger.models import Account, Entry, Journal
from ledger.services import Leg, LegQuery, journal_post_bulk
from ledger.tests.factories import FundedPlayerFactory
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db
ACTOR = SystemActor("test")


def values(rows: list[tuple[int, int]]) -> LegQuery:
    """A leg query over literal rows (a caller would select from its own table)."""
    placeholders = ", ".join(["(%s::bigint, %s::bigint)"] * len(rows))
    return LegQuery(
        f"SELECT account_id, amount_u FROM (VALUES {placeholders}) AS v(account_id, amount_u)",  # noqa: S608
        [value for row in rows for value in row],
    )


def state() -> tuple:
    return (
        tuple(Account.objects.order_by("pk").values_list("balance_u", flat=True)),
        Journal.objects.count(),
        Entry.objects.count(),
    )


@pytest.fixture
def pool(db: Any) -> dict[str, Any]:
    players = FundedPlayerFactory.create_batch(3, balance_u=1_000)
    pool = services.round_pool_account(code="20250908", currency="USDC")
    for player in players:
        services.transfer(
            source=services.user_account(user=player, currency="USDC"),
            destination=pool,
            amount_u=1_000,
            type="bet",
            reference=f"stake:{player.pk}",
            actor=ACTOR,
        )
    return {
        "pool": pool,
        "accounts": [services.user_account(user=p, currency="USDC") for p in players],
        "house": services.house_account(currency="USDC"),
    }


def test_a_bulk_posting_moves_the_query_legs_and_the_fixed_ones(pool: dict[str, Any], assert_ledger_ok: Any) -> None:
    accounts = pool["accounts"]
    journal = journal_post_bulk(
        type="settlement",
        reference="bulk-1",
        currency="USDC",
        actor=ACTOR,
        legs=[Leg(pool["pool"], -3_000), Leg(pool["house"], 30), Leg(pool["house"], 1)],
        leg_query=values([(accounts[0].pk, 1_500), (accounts[1].pk, 1_469), (accounts[2].pk, 0)]),
    )
    assert Entry.objects.filter(journal=journal).count() == 5  # the zero row is skipped; two house entries
    balances = [Account.objects.get(pk=a.pk).balance_u for a in accounts]
    assert balances == [1_500, 1_469, 0]
    assert Account.objects.get(pk=pool["pool"].pk).balance_u == 0
    assert Account.objects.get(pk=pool["house"].pk).balance_u == 31
    assert_ledger_ok()


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("unbalanced", UnbalancedJournal),
        ("overdraft", InsufficientFunds),
        ("currency", CurrencyMismatch),
        ("reused reference", ReferenceConflict),
    ],
)
def test_refusals_change_nothing(
    case: str, error: type[Exception], pool: dict[str, Any], make_player: Any, fund: Any
) -> None:
    accounts, house = pool["accounts"], pool["house"]
    usd = services.user_account(user=make_player(), currency="USD")
    journal_post_bulk(
        type="settlement",
        reference="taken",
        currency="USDC",
        actor=ACTOR,
        legs=[Leg(house, 1)],
        leg_query=values([(pool["pool"].pk, -1)]),
    )  # the pool now holds 2,999
    before = state()
    legs, rows = [Leg(pool["pool"], -2_999)], [(accounts[0].pk, 2_999)]
    if case == "unbalanced":
        rows = [(accounts[0].pk, 2_998)]
    elif case == "overdraft":
        legs, rows = [Leg(pool["pool"], -3_000)], [(accounts[0].pk, 3_000)]
    elif case == "currency":
        rows = [(accounts[0].pk, 1_999), (usd.pk, 1_000)]
    reference = "taken" if case == "reused reference" else "bulk-2"
    with pytest.raises(error):
        journal_post_bulk(
            type="settlement", reference=reference, currency="USDC", actor=ACTOR, legs=legs, leg_query=values(rows)
        )
    assert state() == before


def nestloop() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_nestloop")
        return str(cursor.fetchone()[0])


def test_a_large_posting_is_planned_with_hash_joins_and_the_planner_restored(
    pool: dict[str, Any], assert_ledger_ok: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A posting hinted as large (`LegQuery.rows`) moves the same money; the planner setting is put back."""
    monkeypatch.setattr(services, "BULK_HASH_JOIN_ROWS", 2)
    inside: list[str] = []  # enable_nestloop inside each statement group planned for a large posting
    real = services._without_nested_loops

    @contextmanager
    def recorded(active: bool) -> Iterator[None]:
        with real(active):
            inside.append(nestloop())
            yield

    monkeypatch.setattr(services, "_without_nested_loops", recorded)
    accounts = pool["accounts"]
    rows = [(accounts[0].pk, 1_500), (accounts[1].pk, 1_469), (accounts[2].pk, 0)]
    query = values(rows)
    journal = journal_post_bulk(
        type="settlement",
        reference="bulk-large",
        currency="USDC",
        actor=ACTOR,
        legs=[Leg(pool["pool"], -3_000), Leg(pool["house"], 31)],
        leg_query=LegQuery(query.sql, query.params, rows=len(rows)),
    )
    assert Entry.objects.filter(journal=journal).count() == 4
    assert [Account.objects.get(pk=a.pk).balance_u for a in accounts] == [1_500, 1_469, 0]
    assert inside == ["off", "off"]  # the lock, then the balances
    assert nestloop() == "on"
    assert_ledger_ok()


@pytest.mark.parametrize(
    ("case", "error"),
    [("unbalanced", UnbalancedJournal), ("overdraft", InsufficientFunds), ("currency", CurrencyMismatch)],
)
def test_a_large_posting_keeps_every_refusal(
    case: str, error: type[Exception], pool: dict[str, Any], make_player: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hash-join plan changes how the rows are found, never what is refused; nothing moves, the planner is back."""
    monkeypatch.setattr(services, "BULK_HASH_JOIN_ROWS", 1)
    accounts = pool["accounts"]
    legs, rows = [Leg(pool["pool"], -3_000)], [(accounts[0].pk, 2_998)]
    if case == "overdraft":
        legs, rows = [Leg(pool["pool"], -3_001)], [(accounts[0].pk, 3_001)]
    elif case == "currency":
        usd = services.user_account(user=make_player(), currency="USD")
        rows = [(accounts[0].pk, 2_000), (usd.pk, 1_000)]
    before = state()
    query = values(rows)
    with pytest.raises(error):
        journal_post_bulk(
            type="settlement",
            reference="bulk-refused",
            currency="USDC",
            actor=ACTOR,
            legs=legs,
            leg_query=LegQuery(query.sql, query.params, rows=len(rows)),
        )
    assert state() == before
    assert nestloop() == "on"
