"""Batch postings (`journal_post_batch`, `transfer_batch`): all or nothing, the guards of one posting each,
idempotent per reference. Run on both writers (ledger/tests/conftest.py)."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.db import connection, connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from accounts.tests.factories import UserFactory
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
from ledger.models import Account, Entry, Journal
from ledger.reconciliation import ledger_breaches
from ledger.services import Leg, Posting, Transfer, journal_post_batch, transfer_batch
from ops.actors import SystemActor

ACTOR = SystemActor("test")


def snapshot() -> tuple:
    return (
        tuple(Account.objects.order_by("pk").values_list("pk", "balance_u")),
        tuple(Journal.objects.order_by("pk").values_list("pk", "reference")),
        Entry.objects.count(),
    )


def balance(account: Account) -> int:
    return Account.objects.get(pk=account.pk).balance_u


@pytest.fixture
def books(make_player: Any) -> dict[str, Account]:
    psp = services.external_account(provider="stripe", currency="USDC")
    players = [services.user_account(user=make_player(), currency="USDC") for _ in range(3)]
    services.transfer(source=psp, destination=players[0], amount_u=1_000, type="deposit", reference="seed", actor=ACTOR)
    return {
        "psp": psp,
        "a": players[0],
        "b": players[1],
        "c": players[2],
        "usd": services.external_account(provider="stripe", currency="USD"),
    }


@pytest.mark.django_db
def test_a_batch_posts_every_transfer_in_order(books: dict[str, Account], assert_ledger_ok: Any) -> None:
    a, b, c = books["a"], books["b"], books["c"]
    journals = transfer_batch(
        transfers=[
            Transfer(source=a, destination=b, amount_u=600, type="t", reference="t-1", metadata={"n": 1}),
            Transfer(source=b, destination=c, amount_u=500, type="t", reference="t-2"),  # spends what t-1 brought
            Transfer(source=c, destination=a, amount_u=100, type="t", reference="t-3"),
        ],
        actor=ACTOR,
    )
    assert [j.reference for j in journals] == ["t-1", "t-2", "t-3"]
    assert [j.replayed for j in journals] == [False, False, False]
    assert [balance(a), balance(b), balance(c)] == [500, 100, 400]
    stored = Journal.objects.get(reference="t-1")
    assert stored.pk == journals[0].pk and stored.metadata == {"n": 1} and stored.actor_label == "test"
    assert sorted(stored.entries.values_list("amount_u", flat=True)) == [-600, 600]
    assert journals[0].created_at == stored.created_at
    assert_ledger_ok()


@pytest.mark.django_db
def test_an_empty_batch_posts_nothing(books: dict[str, Account]) -> None:
    before = snapshot()
    assert transfer_batch(transfers=[], actor=ACTOR) == []
    assert snapshot() == before


@pytest.mark.django_db
def test_each_posting_sees_the_balances_the_ones_before_it_leave(books: dict[str, Account]) -> None:
    a, b, c = books["a"], books["b"], books["c"]
    before = snapshot()
    with pytest.raises(InsufficientFunds) as caught:
        transfer_batch(  # the same two transfers as above in the other order: b has nothing yet
            transfers=[
                Transfer(source=b, destination=c, amount_u=500, type="t", reference="t-2"),
                Transfer(source=a, destination=b, amount_u=600, type="t", reference="t-1"),
            ],
            actor=ACTOR,
        )
    assert caught.value.extra["reference"] == "t-2"
    assert caught.value.extra["account"] == b.name and caught.value.extra["required_u"] == 500
    assert "'t-2' in the batch" in caught.value.detail
    assert snapshot() == before


@pytest.mark.django_db
def test_references_already_posted_are_replays_and_the_batch_is_idempotent(books: dict[str, Account]) -> None:
    a, b = books["a"], books["b"]
    single = services.transfer(source=a, destination=b, amount_u=10, type="t", reference="x-1", actor=ACTOR)
    orders = [
        Transfer(source=a, destination=b, amount_u=10, type="t", reference="x-1"),
        Transfer(source=a, destination=b, amount_u=20, type="t", reference="x-2"),
    ]
    first = transfer_batch(transfers=orders, actor=ACTOR)
    assert [j.replayed for j in first] == [True, False] and first[0].pk == single.pk
    assert balance(a) == 970
    before = snapshot()
    again = transfer_batch(transfers=orders, actor=ACTOR)
    assert [j.replayed for j in again] == [True, True]
    assert [j.pk for j in again] == [j.pk for j in first]
    assert snapshot() == before
    # and a single posting recognises a batch's reference as its own
    assert services.transfer(source=a, destination=b, amount_u=20, type="t", reference="x-2", actor=ACTOR).replayed


@pytest.mark.django_db
def test_a_replay_is_recognised_even_when_funds_are_now_short(books: dict[str, Account]) -> None:
    a, b = books["a"], books["b"]
    orders = [Transfer(source=a, destination=b, amount_u=1_000, type="t", reference="all")]
    transfer_batch(transfers=orders, actor=ACTOR)
    before = snapshot()
    assert transfer_batch(transfers=orders, actor=ACTOR)[0].replayed
    assert snapshot() == before


@pytest.mark.django_db
def test_a_reference_twice_in_a_batch_posts_once(books: dict[str, Account]) -> None:
    a, b = books["a"], books["b"]
    order = Transfer(source=a, destination=b, amount_u=10, type="t", reference="dup")
    journals = transfer_batch(transfers=[order, order], actor=ACTOR)
    assert journals[0].pk == journals[1].pk
    assert Journal.objects.filter(reference="dup").count() == 1 and balance(b) == 10


def _refused_batch(case: str, books: dict[str, Account]) -> list[Posting]:
    a, b, psp = books["a"], books["b"], books["psp"]
    good = Posting(type="t", reference="ok", legs=[Leg(a, -1), Leg(b, 1)])
    bad = {
        "overdraft": Posting(type="t", reference="bad", legs=[Leg(a, -1_000), Leg(b, 1_000)]),  # after "ok": 999
        "currency": Posting(
            type="t",
            reference="bad",
            legs=[Leg(books["usd"], -5), Leg(Account(pk=b.pk, name=b.name, currency="USD"), 5)],
        ),
        "unknown account": Posting(
            type="t", reference="bad", legs=[Leg(psp, -5), Leg(Account(pk=10**12, name="ghost", currency="USDC"), 5)]
        ),
        "reference posted with other legs": Posting(type="t", reference="seed", legs=[Leg(a, -5), Leg(b, 5)]),
        "reference twice with other legs": Posting(type="t", reference="ok", legs=[Leg(a, -2), Leg(b, 2)]),
        "unbalanced": Posting(type="t", reference="bad", legs=[Leg(a, -5), Leg(b, 6)]),
        "zero amount": Posting(type="t", reference="bad", legs=[Leg(a, 0), Leg(b, 0)]),
    }[case]
    return [good, bad, Posting(type="t", reference="after", legs=[Leg(psp, -3), Leg(b, 3)])]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("overdraft", InsufficientFunds),
        ("currency", CurrencyMismatch),
        ("unknown account", InvalidAccount),
        ("reference posted with other legs", ReferenceConflict),
        ("reference twice with other legs", ReferenceConflict),
        ("unbalanced", UnbalancedJournal),
        ("zero amount", InvalidAmount),
    ],
)
def test_one_refused_posting_refuses_the_whole_batch_and_changes_nothing(
    case: str, error: type[LedgerError], books: dict[str, Account]
) -> None:
    postings = _refused_batch(case, books)
    before = snapshot()
    with pytest.raises(error) as caught:
        journal_post_batch(postings=postings, actor=ACTOR)
    assert caught.value.extra["reference"] == postings[1].reference
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_reference_taken_by_a_concurrent_posting_meanwhile(
    outcome: str, books: dict[str, Account], db_owner: Any
) -> None:
    """Another transaction inserts the batch's reference (other accounts, so no lock is shared) and
    commits or rolls back while the batch waits on the unique index: a conflict, or the batch posts."""
    a, b, psp, c = books["a"], books["b"], books["psp"], books["c"]
    started, done = threading.Event(), threading.Event()
    seen_waiting: list[bool] = []

    def other() -> None:
        try:
            with transaction.atomic():
                services.transfer(source=psp, destination=c, amount_u=1, type="t", reference="race", actor=ACTOR)
                started.set()
                deadline = time.monotonic() + 10
                waiting = False
                while time.monotonic() < deadline and not waiting:
                    with db_owner() as cursor:  # other sessions' waits: visible to their (owner) session user
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                        )
                        waiting = cursor.fetchone()[0] > 0
                    time.sleep(0.02)
                seen_waiting.append(waiting)
                if outcome == "rollback":
                    transaction.set_rollback(True)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=other)
    thread.start()
    assert started.wait(10)
    orders = [
        Transfer(source=a, destination=b, amount_u=5, type="t", reference="race"),
        Transfer(source=a, destination=b, amount_u=6, type="t", reference="race-2"),
    ]
    before = snapshot()
    if outcome == "commit":
        with pytest.raises(ReferenceConflict):
            transfer_batch(transfers=orders, actor=ACTOR)
        thread.join()
        assert Journal.objects.get(reference="race").entries.filter(account=c).exists()
        assert not Journal.objects.filter(reference="race-2").exists()
        assert balance(a) == 1_000 and balance(b) == 0
    else:
        journals = transfer_batch(transfers=orders, actor=ACTOR)
        thread.join()
        assert [j.replayed for j in journals] == [False, False]
        assert balance(a) == 989 and balance(b) == 11
        assert snapshot()[2] == before[2] + 4
    assert seen_waiting == [True]  # the batch really waited on the other transaction's reference
    assert ledger_breaches() == []


THREADS = 8
ROUNDS = 15
START_U = 2_000


@pytest.mark.django_db(transaction=True)
def test_batches_and_single_postings_on_the_same_accounts_lose_nothing_and_never_deadlock() -> None:
    players = [UserFactory.create() for _ in range(5)]
    hot = [services.user_account(user=p, currency="USDC") for p in players]
    psp = services.external_account(provider="seed", currency="USDC")
    transfer_batch(
        transfers=[
            Transfer(source=psp, destination=account, amount_u=START_U, type="deposit", reference=f"start-{i}")
            for i, account in enumerate(hot)
        ],
        actor=ACTOR,
    )
    applied: list[tuple[int, int, int]] = []
    refused: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        try:
            for i in range(ROUNDS):
                moves: list[tuple[Account, Account, int]] = []
                for _ in range(rng.randint(1, 6)):
                    source, destination = rng.sample(hot, 2)
                    moves.append((source, destination, rng.randint(1, 300)))
                try:
                    if n % 2 and len(moves) > 1:
                        transfer_batch(
                            transfers=[
                                Transfer(source=s, destination=d, amount_u=amt, type="t", reference=f"b-{n}-{i}-{k}")
                                for k, (s, d, amt) in enumerate(moves)
                            ],
                            actor=ACTOR,
                        )
                    else:
                        s, d, amt = moves[0]
                        moves = moves[:1]
                        services.transfer(
                            source=s, destination=d, amount_u=amt, type="t", reference=f"s-{n}-{i}", actor=ACTOR
                        )
                except InsufficientFunds:
                    with lock:
                        refused["insufficient"] += 1
                    continue
                with lock:
                    applied.extend((s.pk, d.pk, amt) for s, d, amt in moves)
        except BaseException as exc:  # a deadlock or any other error reaching the caller fails the test
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    expected = {a.pk: START_U for a in hot}
    for src, dst, amount in applied:
        expected[src] -= amount
        expected[dst] += amount
    stored = dict(Account.objects.filter(pk__in=expected).values_list("pk", "balance_u"))
    assert stored == expected, "an update was lost"
    assert min(stored.values()) >= 0
    assert ledger_breaches() == []
    assert len(applied) > THREADS * ROUNDS // 2  # the test really moved money


_run = itertools.count()


class BatchMachine(RuleBasedStateMachine):
    """Random batches of transfers among a few accounts, valid and not, and a model of the balances."""

    def __init__(self) -> None:
        super().__init__()
        run = next(_run)
        players = [UserFactory.create(email=f"batch{run}-{i}@example.com") for i in range(3)]
        self.accounts = [services.user_account(user=p, currency="USDC") for p in players]
        self.external = services.account_get_or_create(
            name=f"psp:batch-{run}", currency="USDC", kind=Account.Kind.EXTERNAL, allow_negative=True
        )
        self.accounts.append(self.external)
        self.model = {a.pk: 0 for a in self.accounts}
        self.posted: list[list[Transfer]] = []
        self.refs = itertools.count()
        self.prefix = f"batch{run}"

    def _expected(self, orders: list[Transfer]) -> dict[int, int] | None:
        """The balances after posting `orders` one by one, or None if one of them would overdraw."""
        balances = dict(self.model)
        for order in orders:
            balances[order.source.pk] -= order.amount_u
            balances[order.destination.pk] += order.amount_u
            if order.source.pk != self.external.pk and balances[order.source.pk] < 0:
                return None
        return balances

    @rule(
        moves=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 3_000)), min_size=1, max_size=8)
    )
    def batch(self, moves: list[tuple[int, int, int]]) -> None:
        orders = [
            Transfer(
                source=self.accounts[s],
                destination=self.accounts[d],
                amount_u=amount,
                type="t",
                reference=f"{self.prefix}-{next(self.refs)}",
            )
            for s, d, amount in moves
            if s != d
        ]
        if not orders:
            return
        expected = self._expected(orders)
        before = snapshot()
        try:
            journals = transfer_batch(transfers=orders, actor=ACTOR)
        except InsufficientFunds:
            assert expected is None
            assert snapshot() == before
            return
        assert expected is not None and not any(j.replayed for j in journals)
        self.model = expected
        self.posted.append(orders)

    @precondition(lambda self: bool(self.posted))
    @rule(data=st.data())
    def replay(self, data: Any) -> None:
        orders = data.draw(st.sampled_from(self.posted))
        before = snapshot()
        journals = transfer_batch(transfers=orders, actor=ACTOR)
        assert all(j.replayed for j in journals)
        assert snapshot() == before

    @invariant()
    def balances_match_model(self) -> None:
        stored = dict(Account.objects.filter(pk__in=self.model).values_list("pk", "balance_u"))
        assert stored == self.model

    @invariant()
    def every_journal_sums_to_zero_and_balances_equal_their_entries(self) -> None:
        assert ledger_breaches() == []


@pytest.mark.django_db
def test_random_batches_keep_every_invariant() -> None:
    run_state_machine_as_test(
        BatchMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
