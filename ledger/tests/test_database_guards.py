"""The database refuses what the service would never do: edits, deletes, unbalanced journals.

These guards hold even for the tables' owner, so each fault is tried with the owner's rights (`db_owner`):
the application role the suite runs as may not write these tables at all (ops/tests/test_db_roles.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, transaction

from ledger import services
from ledger.models import Account, Entry, Journal
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db


@pytest.fixture
def journal(player: Any) -> Journal:
    return services.transfer(
        source=services.external_account(provider="adyen", currency="USDC"),
        destination=services.user_account(user=player, currency="USDC"),
        amount_u=100,
        type="deposit",
        reference="dep-1",
        actor=SystemActor("test"),
    )


def run_sql(db_owner: Any, sql: str, params: list | None = None) -> None:
    with transaction.atomic(), db_owner() as cursor:
        cursor.execute(sql, params)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def raw_journal(db_owner: Any, reference: str, currency: str, amounts: tuple[int, int]) -> None:
    """Insert a journal and two entries with raw SQL, bypassing the service, and force the checks now."""
    available = Account.objects.get(kind=Account.Kind.USER_AVAILABLE)
    psp = Account.objects.get(kind=Account.Kind.EXTERNAL)
    with transaction.atomic(), db_owner() as cursor:
        cursor.execute(
            "INSERT INTO ledger_journal (type, reference, fingerprint, metadata, actor_label) "
            "VALUES ('x', %s, '', '{}', 'sql') RETURNING id",
            [reference],
        )
        (journal_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u) "
            "VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)",
            [journal_id, available.pk, currency, amounts[0], journal_id, psp.pk, currency, amounts[1]],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_entries_cannot_be_updated_or_deleted(journal: Journal, db_owner: Any) -> None:
    with pytest.raises(DatabaseError, match="append-only"):
        run_sql(db_owner, "UPDATE ledger_entry SET amount_u = amount_u * 2")
    with pytest.raises(DatabaseError, match="append-only"):
        run_sql(db_owner, "DELETE FROM ledger_entry")
    with pytest.raises(DatabaseError, match="append-only"):
        run_sql(db_owner, "UPDATE ledger_journal SET reference = 'other'")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), db_owner():
        Entry.objects.filter(journal=journal).delete()
    assert sorted(Entry.objects.values_list("amount_u", flat=True)) == [-100, 100]


def test_unbalanced_journal_is_refused_at_commit(journal: Journal, db_owner: Any) -> None:
    with pytest.raises(IntegrityError, match="does not sum to zero"):
        raw_journal(db_owner, "raw-1", "USDC", (5, -4))
    assert not Journal.objects.filter(reference="raw-1").exists()


def test_journal_with_one_entry_is_refused(journal: Journal, db_owner: Any) -> None:
    with pytest.raises(IntegrityError, match="at least two"):
        run_sql(
            db_owner,
            "WITH j AS (INSERT INTO ledger_journal (type, reference, fingerprint, metadata, actor_label) "
            "VALUES ('x', 'raw-2', '', '{}', 'sql') RETURNING id) SELECT 1",
        )


@pytest.mark.django_db(transaction=True)
def test_entries_cannot_join_a_committed_journal(player: Any, db_owner: Any) -> None:
    psp = services.external_account(provider="adyen", currency="USDC")
    available = services.user_account(user=player, currency="USDC")
    committed = services.transfer(
        source=psp, destination=available, amount_u=100, type="deposit", reference="c-1", actor=SystemActor("test")
    )
    with pytest.raises(DatabaseError, match="transaction that creates their journal"):
        run_sql(
            db_owner,
            "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u) "
            "VALUES (%s, %s, 'USDC', 7), (%s, %s, 'USDC', -7)",
            [committed.pk, available.pk, committed.pk, psp.pk],
        )
    assert sorted(committed.entries.values_list("amount_u", flat=True)) == [-100, 100]


def test_negative_balance_is_refused_by_check_constraint(journal: Journal, db_owner: Any) -> None:
    available = Account.objects.get(kind=Account.Kind.USER_AVAILABLE)
    with pytest.raises(IntegrityError, match="ledger_account_balance_not_negative"):
        with transaction.atomic(), db_owner():
            Account.objects.filter(pk=available.pk).update(balance_u=-1)
    assert Account.objects.get(pk=available.pk).balance_u == 100


def test_entry_currency_must_match_its_account(journal: Journal, db_owner: Any) -> None:
    with pytest.raises(DatabaseError, match="currency"):
        raw_journal(db_owner, "raw-3", "USD", (5, -5))
    assert not Journal.objects.filter(reference="raw-3").exists()


def test_audit_log_is_append_only(player: Any, db_owner: Any) -> None:
    from ops.audit import audit_record
    from ops.models import AuditRecord

    audit_record(actor=player, action="test.action", object_type="x", object_id="1", reason="r")
    with pytest.raises(DatabaseError, match="append-only"):
        run_sql(db_owner, "UPDATE audit_log SET reason = 'rewritten'")
    with pytest.raises(DatabaseError, match="append-only"):
        run_sql(db_owner, "DELETE FROM audit_log")
    assert AuditRecord.objects.get().reason == "r"
