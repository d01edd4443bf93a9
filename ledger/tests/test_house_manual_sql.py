"""The house operating manual's SQL runs verbatim against the `ledger_entries` view."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from ledger import services
from ledger.models import Account
from ledger.services import Leg
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db

HOUSE_BALANCE = """
SELECT SUM(amount_u) as house_balance_u 
FROM ledger_entries 
WHERE account = 'house';
"""
DAILY_FEES = """
SELECT DATE(ts) as date, SUM(amount_u) as fees_collected_u
FROM ledger_entries 
WHERE account = 'house' 
   AND ref_type = 'settlement'
   AND DATE(ts) = CURRENT_DATE
GROUP BY DATE(ts);
"""
UNBALANCED_BATCHES = """
SELECT ref_id, SUM(amount_u) as batch_total
FROM ledger_entries
GROUP BY ref_id
HAVING SUM(amount_u) != 0;
"""
PROBLEM_TRANSACTIONS = """
SELECT * FROM ledger_entries 
WHERE ref_id IN (
    SELECT ref_id FROM ledger_entries 
    GROUP BY ref_id 
    HAVING SUM(amount_u) != 0
);
"""


def query(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.fixture
def settled_day(make_player: Any) -> None:
    winner, loser = make_player(), make_player()
    psp = services.external_account(provider="stripe", currency="USDC")
    pool = services.account_get_or_create(name="round:20250908:pool", currency="USDC", kind=Account.Kind.ROUND_POOL)
    house = services.house_account(currency="USDC")
    for i, player in enumerate((winner, loser)):
        available = services.user_account(user=player, currency="USDC")
        services.transfer(
            source=psp,
            destination=available,
            amount_u=1_000_000,
            type="deposit",
            reference=f"d{i}",
            actor=SystemActor("test"),
        )
        services.transfer(
            source=available,
            destination=pool,
            amount_u=1_000_000,
            type="bet",
            reference=f"b{i}",
            actor=SystemActor("test"),
        )
    services.journal_post(
        type="settlement",
        reference="round:20250908:settlement",
        legs=[
            Leg(pool, -2_000_000),
            Leg(services.user_account(user=winner, currency="USDC"), 1_979_999),
            Leg(house, 20_000),
            Leg(house, 1),
        ],
        actor=SystemActor("test"),
    )
    services.transfer(
        source=psp, destination=house, amount_u=5, type="adjustment", reference="adj-1", actor=SystemActor("test")
    )


def test_house_balance(settled_day: None) -> None:
    assert query(HOUSE_BALANCE) == [(20_006,)]


def test_daily_fees_collected(settled_day: None) -> None:
    (row,) = query(DAILY_FEES)
    assert row[1] == 20_001  # fee and breakage of today's settlement; the adjustment is not a fee


def test_no_unbalanced_batches_in_a_healthy_ledger(settled_day: None) -> None:
    assert query(UNBALANCED_BATCHES) == []
    assert query(PROBLEM_TRANSACTIONS) == []


def test_unbalanced_batch_queries_find_a_bad_batch_before_the_database_refuses_it(
    settled_day: None, db_owner: Any
) -> None:
    """Inside a transaction, before the deferred check fires, the manual's queries see the bad batch
    (planted with the owner's rights: the application role cannot write the ledger's tables)."""
    sid = transaction.savepoint()
    with db_owner() as cursor:
        cursor.execute(
            "INSERT INTO ledger_journal (type, reference, fingerprint, metadata, actor_label) "
            "VALUES ('bad', 'bad-batch', '', '{}', 'sql') RETURNING id"
        )
        (journal_id,) = cursor.fetchone()
        cursor.execute("SELECT id FROM ledger_account WHERE name = 'house'")
        (house_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u) VALUES (%s, %s, 'USDC', 13)",
            [journal_id, house_id],
        )
    assert query(UNBALANCED_BATCHES) == [("bad-batch", 13)]
    assert [row[1] for row in query(PROBLEM_TRANSACTIONS)] == ["house"]
    transaction.savepoint_rollback(sid)
    assert query(UNBALANCED_BATCHES) == []
