"""The ledger's door for rows: legs staged in `ledger_posting_leg`, posted by `journal_post_staged`.

The caller stages with its own set-based INSERT ... SELECT (here over literal VALUES, as rounds does over its
bets) and `posting_legs_stage`; one call of `ledger_post_staged` posts them with the rules of every posting.
Refusals change nothing, a replay returns the same journal, and staged rows never outlive the transaction.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import services
from ledger.errors import (
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAccount,
    InvalidAmount,
    LedgerError,
    ReferenceConflict,
    UnbalancedJournal,
)
from ledger.models import Account, Entry, Journal, PostingLeg
from ledger.reconciliation import ledger_breaches
from ledger.services import POSTING_LEG_TABLE, Leg, journal_post_staged, posting_legs_stage
from ledger.tests.factories import FundedPlayerFactory
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db
ACTOR = SystemActor("test")


def stage_rows(reference: str, rows: list[tuple[int, int]]) -> None:
    """Stage rows as a caller does: its own INSERT ... SELECT (here over literal rows, rounds' over its bets)."""
    if not rows:
        return
    placeholders = ", ".join(["(%s::bigint, %s::bigint)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {POSTING_LEG_TABLE} (posting_reference, account_id, amount_u)"  # noqa: S608
            f" SELECT %s, v.account_id, v.amount_u FROM (VALUES {placeholders}) AS v(account_id, amount_u)",
            [reference, *(value for row in rows for value in row)],
        )


def post(reference: str, legs: list[Leg], rows: list[tuple[int, int]], *, type: str = "settlement") -> Journal:
    with transaction.atomic():
        posting_legs_stage(reference=reference, legs=legs)
        stage_rows(reference, rows)
        return journal_post_staged(type=type, reference=reference, currency="USDC", actor=ACTOR)


def state() -> tuple:
    return (
        tuple(Account.objects.order_by("pk").values_list("balance_u", flat=True)),
        Journal.objects.count(),
        Entry.objects.count(),
        PostingLeg.objects.count(),
    )


@pytest.fixture
def pool(db: Any) -> dict[str, Any]:
    players = FundedPlayerFactory.create_batch(3, balance_u=1_000)
    pool = services.account_get_or_create(name="round:20250908:pool", currency="USDC", kind=Account.Kind.ROUND_POOL)
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


def test_a_staged_posting_moves_the_rows_and_the_fixed_legs(pool: dict[str, Any], assert_ledger_ok: Any) -> None:
    accounts = pool["accounts"]
    journal = post(
        "bulk-1",
        [Leg(pool["pool"], -3_000), Leg(pool["house"], 30), Leg(pool["house"], 1)],
        [(accounts[0].pk, 1_500), (accounts[1].pk, 1_469)],
    )
    assert not journal.replayed
    assert Entry.objects.filter(journal=journal).count() == 5  # two house entries
    assert [Account.objects.get(pk=a.pk).balance_u for a in accounts] == [1_500, 1_469, 0]
    assert Account.objects.get(pk=pool["pool"].pk).balance_u == 0
    assert Account.objects.get(pk=pool["house"].pk).balance_u == 31
    assert set(Entry.objects.filter(journal=journal).values_list("currency", flat=True)) == {"USDC"}
    assert PostingLeg.objects.count() == 0  # the staged rows are consumed by the posting
    assert_ledger_ok()


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("unbalanced", UnbalancedJournal),
        ("one leg", UnbalancedJournal),
        ("nothing staged", UnbalancedJournal),
        ("zero leg", InvalidAmount),
        ("overdraft", InsufficientFunds),
        ("currency", CurrencyMismatch),
        ("unknown account", InvalidAccount),
        ("reused reference", ReferenceConflict),
    ],
)
def test_refusals_change_nothing_and_leave_no_staged_row(
    case: str, error: type[Exception], pool: dict[str, Any], make_player: Any
) -> None:
    accounts, house = pool["accounts"], pool["house"]
    usd = services.user_account(user=make_player(), currency="USD")
    post("taken", [Leg(house, 1)], [(pool["pool"].pk, -1)])  # the pool now holds 2,999
    before = state()
    legs, rows = [Leg(pool["pool"], -2_999)], [(accounts[0].pk, 2_999)]
    if case == "unbalanced":
        rows = [(accounts[0].pk, 2_998)]
    elif case == "one leg":
        legs, rows = [], [(accounts[0].pk, 1)]
    elif case == "nothing staged":
        legs, rows = [], []
    elif case == "zero leg":
        rows = [(accounts[0].pk, 2_999), (accounts[1].pk, 0)]
    elif case == "overdraft":
        legs, rows = [Leg(pool["pool"], -3_000)], [(accounts[0].pk, 3_000)]
    elif case == "currency":
        rows = [(accounts[0].pk, 1_999), (usd.pk, 1_000)]
    elif case == "unknown account":
        missing = Account.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1_000
        rows = [(accounts[0].pk, 1_999), (missing, 1_000)]
    reference = "taken" if case == "reused reference" else "bulk-2"
    with pytest.raises(error):
        post(reference, legs, rows)
    assert state() == before
    assert PostingLeg.objects.count() == 0


def test_an_overdraft_names_the_account_and_its_balance(pool: dict[str, Any]) -> None:
    with pytest.raises(InsufficientFunds) as refused:
        post("bulk-over", [Leg(pool["pool"], -3_001)], [(pool["accounts"][0].pk, 3_001)])
    assert refused.value.extra == {"account": "round:20250908:pool", "balance_u": 3_000, "required_u": 3_001}


def test_a_replay_with_the_same_legs_returns_the_journal_and_with_other_legs_is_a_conflict(
    pool: dict[str, Any], assert_ledger_ok: Any
) -> None:
    accounts = pool["accounts"]
    legs, rows = [Leg(pool["pool"], -3_000)], [(accounts[0].pk, 2_000), (accounts[1].pk, 1_000)]
    first = post("round:x:settlement", legs, rows)
    before = state()
    again = post("round:x:settlement", legs, list(reversed(rows)))  # the same legs, staged in another order
    assert again.replayed and again.pk == first.pk
    assert state() == before
    with pytest.raises(ReferenceConflict):
        post("round:x:settlement", legs, [(accounts[0].pk, 1_000), (accounts[1].pk, 2_000)])
    assert state() == before
    assert_ledger_ok()


def test_the_fingerprint_is_journal_posts(pool: dict[str, Any]) -> None:
    """A reference posted by `journal_post` and staged again with the same legs is a replay: one fingerprint rule."""
    accounts = pool["accounts"]
    legs = [Leg(pool["pool"], -1_000), Leg(accounts[0], 900), Leg(pool["house"], 100)]
    first = services.journal_post(type="settlement", reference="one-rule", legs=legs, actor=ACTOR)
    again = post("one-rule", legs[:1], [(accounts[0].pk, 900), (pool["house"].pk, 100)])
    assert again.replayed and again.pk == first.pk and again.fingerprint == first.fingerprint


def test_a_large_posting_is_planned_with_hash_joins_and_the_planner_restored(
    pool: dict[str, Any], assert_ledger_ok: Any
) -> None:
    """10,000 staged legs (the function's threshold) on a few accounts take the hash-join plan, same money."""
    accounts = pool["accounts"]
    with transaction.atomic():
        posting_legs_stage(reference="bulk-large", legs=[Leg(pool["pool"], -3_000)])
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {POSTING_LEG_TABLE} (posting_reference, account_id, amount_u)"  # noqa: S608
                " SELECT 'bulk-large', (%s::bigint[])[1 + i %% 3], 1 FROM generate_series(0, 2999) i",
                [[a.pk for a in accounts]],
            )
            cursor.execute("SHOW enable_nestloop")
            assert cursor.fetchone()[0] == "on"
        journal = journal_post_staged(type="settlement", reference="bulk-large", currency="USDC", actor=ACTOR)
        with connection.cursor() as cursor:
            cursor.execute("SHOW enable_nestloop")
            assert cursor.fetchone()[0] == "on"
    assert Entry.objects.filter(journal=journal).count() == 3_001
    assert [Account.objects.get(pk=a.pk).balance_u for a in accounts] == [1_000, 1_000, 1_000]
    assert PostingLeg.objects.count() == 0
    assert_ledger_ok()


@pytest.mark.django_db(transaction=True)
def test_staging_or_posting_outside_a_transaction_is_refused() -> None:
    """Staged rows live for one transaction: staging or posting in autocommit is a programming error."""
    house = services.house_account(currency="USDC")
    with pytest.raises(RuntimeError, match=r"transaction\.atomic"):
        posting_legs_stage(reference="x", legs=[Leg(house, -1)])
    with pytest.raises(RuntimeError, match=r"transaction\.atomic"):
        journal_post_staged(type="settlement", reference="x", currency="USDC", actor=ACTOR)
    assert PostingLeg.objects.count() == 0 and Journal.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_rows_another_transaction_staged_and_committed_are_never_posted(assert_ledger_ok: Any) -> None:
    """Staged rows never outlive the transaction: rows some session committed are deleted, never posted."""
    player = FundedPlayerFactory.create(balance_u=1_000)
    account = services.user_account(user=player, currency="USDC")
    house = services.house_account(currency="USDC")
    with transaction.atomic():  # an insider stages a credit to the house and commits without posting
        stage_rows("round:y:settlement", [(house.pk, 500), (account.pk, -500)])
    assert PostingLeg.objects.count() == 2
    assert [b.invariant for b in ledger_breaches()] == ["no_staged_legs_left"]  # the reconciliation sees them
    with transaction.atomic():
        posting_legs_stage(reference="round:y:settlement", legs=[Leg(account, -100)])
        stage_rows("round:y:settlement", [(house.pk, 100)])
        journal = journal_post_staged(type="settlement", reference="round:y:settlement", currency="USDC", actor=ACTOR)
    assert sorted(Entry.objects.filter(journal=journal).values_list("amount_u", flat=True)) == [-100, 100]
    assert Account.objects.get(pk=account.pk).balance_u == 900
    assert Account.objects.get(pk=house.pk).balance_u == 100
    assert PostingLeg.objects.count() == 0  # the stale rows went with the posting
    assert_ledger_ok()


_examples = itertools.count()


class _Rollback(Exception):
    pass


LEG = st.tuples(st.sampled_from([0, 0, 1, 2, 3, 3, 3, 4, 4, 5]), st.integers(-1_500, 1_500))  # 5: in USD


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(legs=st.lists(LEG, min_size=0, max_size=6), balancing=st.booleans())
def test_random_staged_postings_are_posted_or_refused_with_nothing_changed(
    pool: dict[str, Any], make_player: Any, legs: list[tuple[int, int]], balancing: bool
) -> None:
    """Random legs over funded accounts, an account in USD and one that does not exist.

    The outcome is the one `journal_post`'s rules give, computed here; a refusal changes nothing (balances,
    journals, entries, staged rows); an accepted posting moves exactly the legs.
    """
    usd = Account.objects.filter(currency="USD").first() or services.user_account(user=make_player(), currency="USD")
    missing = Account.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1_000
    targets = [*pool["accounts"], pool["pool"], pool["house"]]
    ids = [a.pk for a in targets[:5]] + [usd.pk]
    rows = [(ids[i], amount) for i, amount in legs]
    if balancing and rows:
        rest = -sum(amount for _, amount in rows)  # from the pool (funded) or to the house
        rows.append((pool["pool"].pk if rest < 0 else pool["house"].pk, rest))
    if rows and rows[0][0] == pool["accounts"][2].pk and rows[0][1] % 7 == 0:
        rows[0] = (missing, rows[0][1])  # now and then an account that does not exist
    accounts = {a.pk: a for a in Account.objects.filter(pk__in=[r[0] for r in rows])}
    expected: type[LedgerError] | None = None
    deltas: dict[int, int] = {}
    for account_id, amount in rows:
        deltas[account_id] = deltas.get(account_id, 0) + amount
    if any(amount == 0 for _, amount in rows):
        expected = InvalidAmount
    elif len(rows) < 2 or sum(amount for _, amount in rows) != 0:
        expected = UnbalancedJournal
    elif any(account_id not in accounts for account_id, _ in rows):
        expected = InvalidAccount
    elif any(accounts[account_id].currency != "USDC" for account_id, _ in rows):
        expected = CurrencyMismatch
    elif any(not accounts[a].allow_negative and accounts[a].balance_u + delta < 0 for a, delta in deltas.items()):
        expected = InsufficientFunds
    event(expected.__name__ if expected else "posted")
    reference = f"prop-{next(_examples)}"
    before = state()
    try:
        with transaction.atomic():
            try:
                journal = post(reference, [], rows)
            except LedgerError as exc:
                assert type(exc) is expected, (rows, exc)
                assert state() == before
            else:
                assert expected is None, (rows, expected)
                assert not journal.replayed
                for account_id, delta in deltas.items():
                    assert Account.objects.get(pk=account_id).balance_u == accounts[account_id].balance_u + delta
                assert Entry.objects.filter(journal=journal).count() == len(rows)
                assert PostingLeg.objects.count() == 0
            raise _Rollback  # every example starts from the same balances
    except _Rollback:
        pass


def test_the_posting_function_runs_as_its_owner_with_a_pinned_search_path() -> None:
    """`ledger_post_staged` is SECURITY DEFINER with a pinned search_path (the application role writes nothing)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosecdef, proconfig FROM pg_proc WHERE proname = 'ledger_post_staged'")
        rows = cursor.fetchall()
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'ledger_posting_leg'")
        (persistence,) = cursor.fetchone()
    assert rows == [(True, ["search_path=pg_catalog, public, pg_temp"])]
    assert persistence == "u"  # UNLOGGED: its rows never outlive a transaction
