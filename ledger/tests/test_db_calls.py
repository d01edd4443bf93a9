"""The posting calls on the raw psycopg cursor (`ledger.db_calls`): refusals change nothing, prepared or not;
database errors come out as Django's and leave `transaction.atomic()` in the state Django expects; Django's
query watchers still see the call; django-prometheus still counts it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import DataError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from ledger import services
from ledger.db_calls import CURSOR_ATTRIBUTE, int_array, prepared_statements, text_array
from ledger.errors import (
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAccount,
    InvalidAmount,
    InvalidReference,
    LedgerError,
    ReferenceConflict,
    UnbalancedJournal,
)
from ledger.models import Account, Entry, Journal
from ledger.services import Leg, Transfer
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db
ACTOR = SystemActor("test")
NUL_METADATA = {"note": "\x00"}  # valid JSON, refused by PostgreSQL's jsonb: a real database error (22P05)


class Boom(Exception):
    """Raised to leave an atomic block."""


def snapshot() -> tuple:
    return (
        tuple(Account.objects.order_by("pk").values_list("pk", "balance_u")),
        tuple(Journal.objects.order_by("pk").values_list("pk", "reference")),
        Entry.objects.count(),
    )


def prepared_posting_calls() -> list[str]:
    """The posting calls prepared on this session (PostgreSQL's own view of it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%%ledger_post%%'")
        return [row[0] for row in cursor.fetchall()]


def forget_prepared() -> None:
    """Drop this session's prepared statements; psycopg sees DEALLOCATE ALL and forgets its own."""
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute("DEALLOCATE ALL")


@pytest.fixture(params=[True, False], ids=["prepared", "unprepared"])
def prepare(request: Any, settings: Any) -> Iterator[bool]:
    settings.LEDGER_PREPARED_STATEMENTS = request.param
    connection.ensure_connection()
    forget_prepared()
    setattr(connection, CURSOR_ATTRIBUTE, None)  # so the next posting call shows which cursor it took
    yield request.param


@pytest.fixture
def books(player: Any, prepare: bool) -> dict[str, Account]:
    psp = services.external_account(provider="stripe", currency="USDC")
    available = services.user_account(user=player, currency="USDC")
    services.transfer(source=psp, destination=available, amount_u=1_000, type="deposit", reference="seed", actor=ACTOR)
    return {
        "psp": psp,
        "available": available,
        "held": services.user_account(user=player, currency="USDC", kind=Account.Kind.USER_HELD),
        "usd": services.external_account(provider="stripe", currency="USD"),
    }


def move(books: dict[str, Account], amount_u: int, reference: str, **kwargs: Any) -> Journal:
    return services.transfer(
        source=books["available"],
        destination=books["held"],
        amount_u=amount_u,
        type="t",
        reference=reference,
        actor=ACTOR,
        **kwargs,
    )


def test_the_call_is_prepared_only_when_the_setting_says_so(books: dict[str, Account], prepare: bool) -> None:
    move(books, 1, "a")
    move(books, 1, "b")
    assert len(prepared_posting_calls()) == (1 if prepare else 0)
    posting_cursor = getattr(connection, CURSOR_ATTRIBUTE)
    assert posting_cursor is not None and posting_cursor.connection is connection.connection  # the raw path


def test_unset_the_setting_prepares_unless_a_pooler_is_declared(settings: Any, monkeypatch: Any) -> None:
    settings.LEDGER_PREPARED_STATEMENTS = None
    assert prepared_statements(connection) is True
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    assert prepared_statements(connection) is False
    settings.LEDGER_PREPARED_STATEMENTS = True  # PgBouncer >= 1.21 with max_prepared_statements
    assert prepared_statements(connection) is True


REFUSALS: list[tuple[str, type[Exception]]] = [
    ("overdraft", InsufficientFunds),
    ("unknown account", InvalidAccount),
    ("account in another currency", CurrencyMismatch),
    ("reference reused with other contents", ReferenceConflict),
    ("unbalanced legs", UnbalancedJournal),
    ("zero leg", InvalidAmount),
    ("empty reference", InvalidReference),
    ("no actor", TypeError),
]


def refused_posting(case: str, books: dict[str, Account]) -> None:
    """Attempt the posting of `case`: each is refused, by the database's function or by the Python checks."""
    available, held = books["available"], books["held"]
    legs = {
        "overdraft": [Leg(available, -1_001), Leg(held, 1_001)],
        "unknown account": [Leg(available, -1), Leg(Account(pk=10**12, name="ghost", currency="USDC"), 1)],
        "account in another currency": [
            Leg(books["usd"], -1),
            Leg(Account(pk=held.pk, name=held.name, currency="USD"), 1),
        ],
        "reference reused with other contents": [Leg(available, -2), Leg(held, 2)],
        "unbalanced legs": [Leg(available, -2), Leg(held, 1)],
        "zero leg": [Leg(available, 0), Leg(held, 0)],
        "empty reference": [Leg(available, -1), Leg(held, 1)],
        "no actor": [Leg(available, -1), Leg(held, 1)],
    }[case]
    reference = {"reference reused with other contents": "seed", "empty reference": ""}.get(case, f"refused-{case}")
    actor: Any = None if case == "no actor" else ACTOR
    services.journal_post(type="t", reference=reference, legs=legs, actor=actor)


@pytest.mark.parametrize(("case", "error"), REFUSALS, ids=[case for case, _ in REFUSALS])
def test_each_refusal_changes_nothing(books: dict[str, Account], case: str, error: type[Exception]) -> None:
    before = snapshot()
    with pytest.raises(error):
        refused_posting(case, books)
    assert snapshot() == before
    move(books, 5, "after")  # the connection is as usable as before
    assert Account.objects.get(pk=books["held"].pk).balance_u == 5


def test_a_refused_batch_changes_nothing(books: dict[str, Account]) -> None:
    before = snapshot()
    with pytest.raises(InsufficientFunds, match="'b2' in the batch"):
        services.transfer_batch(
            transfers=[
                Transfer(books["available"], books["held"], 600, "t", "b1"),
                Transfer(books["available"], books["held"], 600, "t", "b2"),
            ],
            actor=ACTOR,
        )
    assert snapshot() == before


def test_postings_inside_an_outer_atomic_roll_back_with_it(books: dict[str, Account]) -> None:
    before = snapshot()
    with pytest.raises(Boom), transaction.atomic():
        journal = move(books, 300, "inside")
        assert journal.pk is not None and not journal.replayed
        assert Account.objects.get(pk=books["held"].pk).balance_u == 300
        raise Boom
    assert snapshot() == before
    assert not connection.needs_rollback


def test_a_database_error_in_a_savepoint_leaves_the_outer_transaction_usable(books: dict[str, Account]) -> None:
    """The raw cursor's error comes out as Django's DataError; the savepoint rolls back; the rest commits."""
    before = snapshot()
    with pytest.raises(Boom), transaction.atomic():
        move(books, 100, "kept-until-boom")
        with pytest.raises(DataError) as caught, transaction.atomic():
            move(books, 200, "nul", metadata=NUL_METADATA)
        assert isinstance(caught.value.__cause__, psycopg.DataError)
        assert not connection.needs_rollback
        move(books, 50, "after-savepoint")
        assert Account.objects.get(pk=books["held"].pk).balance_u == 150
        raise Boom
    assert snapshot() == before


def test_a_database_error_without_a_savepoint_marks_the_transaction_for_rollback(books: dict[str, Account]) -> None:
    """As with Django's cursor: the block is marked, the next posting is refused, the outer block rolls back."""
    before = snapshot()
    with transaction.atomic():
        move(books, 100, "rolled-back")
        with pytest.raises(DataError), transaction.atomic(savepoint=False):
            move(books, 200, "nul", metadata=NUL_METADATA)
        assert connection.needs_rollback
        with pytest.raises(TransactionManagementError):
            move(books, 1, "refused-in-a-broken-transaction")
    assert snapshot() == before
    assert not connection.needs_rollback


def test_django_query_watchers_still_see_the_call(books: dict[str, Account]) -> None:
    """Query capture and execute wrappers take Django's cursor, so the posting is in what they saw."""
    with CaptureQueriesContext(connection) as captured:
        move(books, 1, "captured")
    assert any("ledger_post(" in query["sql"] for query in captured.captured_queries)
    seen: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        move(books, 1, "wrapped")
    assert any("ledger_post(" in sql for sql in seen)
    assert Account.objects.get(pk=books["held"].pk).balance_u == 2


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"alias": "default", "vendor": "postgresql", **labels}) or 0.0


def test_django_prometheus_counts_the_call_and_its_error(books: dict[str, Account]) -> None:
    executed = metric("django_db_execute_total")
    errors = metric("django_db_errors_total", type="UntranslatableCharacter")
    timed = metric("django_db_query_duration_seconds_count")
    move(books, 1, "counted")
    assert metric("django_db_execute_total") == executed + 1
    assert metric("django_db_query_duration_seconds_count") == timed + 1
    with pytest.raises(DataError), transaction.atomic():
        move(books, 1, "nul", metadata=NUL_METADATA)
    assert metric("django_db_errors_total", type="UntranslatableCharacter") == errors + 1


def test_array_parameters_reach_postgresql_as_they_were() -> None:
    texts = ["USDC", 'a"b', "back\\slash", "{x,y}", "NULL", ""]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::varchar[], %s::bigint[]", [text_array(texts), int_array([0, -1, 2**62])])
        assert cursor.fetchone() == (texts, [0, -1, 2**62])
    with pytest.raises(TypeError):
        int_array(["1"])  # type: ignore[list-item]


def test_a_ledger_error_is_not_a_database_error(books: dict[str, Account]) -> None:
    """A refusal is the function's answer, not an error of the statement: nothing marks the transaction."""
    with transaction.atomic():
        with pytest.raises(LedgerError):
            move(books, 5_000, "short")
        assert not connection.needs_rollback
        move(books, 5, "fine")
