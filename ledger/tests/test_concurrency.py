"""Concurrency on PostgreSQL: 16 threads moving money among a few hot accounts."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from ledger import services
from ledger.errors import InsufficientFunds
from ledger.models import Account
from ledger.reconciliation import ledger_breaches
from ops.actors import SystemActor
from ops.tests.at_once import at_once, results

THREADS = 16
TRANSFERS_PER_THREAD = 40
START_U = 1_000


@pytest.mark.django_db(transaction=True)
def test_sixteen_threads_lose_no_update_and_never_deadlock() -> None:
    players = [UserFactory.create() for _ in range(4)]
    hot = [services.user_account(user=p, currency="USDC") for p in players]
    hot.append(services.house_account(currency="USDC"))
    psp = services.external_account(provider="seed", currency="USDC")
    for i, account in enumerate(hot):
        services.transfer(
            source=psp,
            destination=account,
            amount_u=START_U,
            type="deposit",
            reference=f"start-{i}",
            actor=SystemActor("test"),
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
            for i in range(TRANSFERS_PER_THREAD):
                src, dst = rng.sample(hot, 2)
                amount = rng.randint(1, 400)
                try:
                    services.transfer(
                        source=src,
                        destination=dst,
                        amount_u=amount,
                        type="t",
                        reference=f"c-{n}-{i}",
                        actor=SystemActor("test"),
                    )
                except InsufficientFunds:
                    with lock:
                        refused["insufficient"] += 1
                    continue
                with lock:
                    applied.append((src.pk, dst.pk, amount))
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
    assert len(applied) + refused["insufficient"] == THREADS * TRANSFERS_PER_THREAD
    expected = {a.pk: START_U for a in hot}
    for src, dst, amount in applied:
        expected[src] -= amount
        expected[dst] += amount
    stored = dict(Account.objects.filter(pk__in=expected).values_list("pk", "balance_u"))
    assert stored == expected, "an update was lost"
    assert min(stored.values()) >= 0
    assert ledger_breaches() == []
    assert len(applied) > THREADS * TRANSFERS_PER_THREAD // 2  # the test really moved money


@pytest.mark.django_db(transaction=True)
def test_two_reconciliation_runs_at_once_both_check_and_move_nothing() -> None:
    """Beat's reconciliation run twice at once (a standby beat taking over mid-tick): two runs recorded, both
    clean, no money moved; it reads the books and writes only its own run rows."""
    from ledger.models import Entry, Journal, ReconciliationRun
    from ledger.reconciliation import reconciliation_run

    player = UserFactory.create()
    services.transfer(
        source=services.external_account(provider="seed", currency="USDC"),
        destination=services.user_account(user=player, currency="USDC"),
        amount_u=START_U,
        type="deposit",
        reference="recon-twice",
        actor=SystemActor("test"),
    )
    books = (Journal.objects.count(), Entry.objects.count(), sorted(Account.objects.values_list("pk", "balance_u")))
    outcomes = results(at_once(reconciliation_run))

    assert [breaches for _, breaches in outcomes] == [[], []]
    assert ReconciliationRun.objects.filter(ok=True, finished_at__isnull=False).count() == 2
    assert (
        Journal.objects.count(),
        Entry.objects.count(),
        sorted(Account.objects.values_list("pk", "balance_u")),
    ) == books
