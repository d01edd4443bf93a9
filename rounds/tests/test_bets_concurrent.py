"""Bets of one round run concurrently, and the lock stays exact (PostgreSQL, real threads, real commits).

A bet holds its round shared (`rounds.lock_objects`, inside `rounds_bet_place`) and credits one of the round's pool
stripes; `round_lock` takes the round exclusively, waits for the bets in flight, folds the stripes into the
pool account and publishes the Merkle root. These tests check that no bet commits after the lock, that
the pools equal the accepted stakes, and that two bets really hold their transactions at the same time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from ledger.models import Account, Entry, Journal
from ledger.services import user_account
from ledger.tests.factories import FundedPlayerFactory
from ops.actors import BEAT
from rounds import errors
from rounds.accounts import round_pool_stripes
from rounds.betting import bet_place
from rounds.domain.merkle import bet_leaves, merkle_root
from rounds.models import Bet, Round
from rounds.pools import POOL_STRIPES, pools_live
from rounds.selectors import bet_records, round_leaves
from rounds.services import round_lock
from rounds.tests.factories import pool_held

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30  # a barrier or event not reached by then fails the test instead of hanging it


def _available(player: Any) -> int:
    return user_account(user=player, currency="USDC").balance_u


def _in_thread(target: Callable[[], Any], results: list[Any]) -> threading.Thread:
    """Run `target` in a thread with its own connection; append its result or its exception."""

    def run() -> None:
        try:
            results.append(target())
        except BaseException as exc:  # noqa: BLE001 (recorded and asserted by the caller)
            results.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads), "a thread is still blocked"


def _assert_locked_round_is_exact(round_obj: Round, accepted: list[Bet]) -> None:
    """The lock's root, figures and pool account are exactly the accepted bets; the stripes are empty."""
    locked = Round.objects.get(pk=round_obj.pk)
    assert locked.status == Round.Status.LOCKED
    rows = set(Bet.objects.filter(round=locked).values_list("bet_id", flat=True))
    assert rows == {bet.bet_id for bet in accepted}  # no bet row but the accepted ones
    # The published root covers every bet row: recomputed from the stored leaves and from the public records.
    assert merkle_root(round_leaves(round_obj=locked)) == locked.merkle_root
    assert merkle_root(bet_leaves(bets=bet_records(round_obj=locked))) == locked.merkle_root
    up = [bet.stake_u for bet in accepted if bet.side == "UP"]
    down = [bet.stake_u for bet in accepted if bet.side == "DOWN"]
    assert (locked.up_pool_u, locked.down_pool_u, locked.up_bets, locked.down_bets) == (
        sum(up),
        sum(down),
        len(up),
        len(down),
    )
    assert Account.objects.get(pk=locked.pool_account_id).balance_u == sum(up) + sum(down)
    assert [s.balance_u for s in round_pool_stripes(code=locked.code, currency="USDC")] == [0] * POOL_STRIPES


def test_64_players_betting_at_once_across_the_lock(
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    players = [FundedPlayerFactory.create(balance_u=5_000_000) for _ in range(64)]
    stakes = {player.pk: 1_000_000 + 1_000 * i for i, player in enumerate(players)}
    # 32 bet at once before the lock; 24 start with the lock, racing it; 8 start once it has committed.
    early, racing, late = players[:32], players[32:56], players[56:]
    start, locking, locked = threading.Barrier(len(early) + 1, timeout=WAIT_S), threading.Event(), threading.Event()
    lock = threading.Lock()
    accepted: list[Bet] = []
    refused: list[Any] = []
    failures: list[BaseException] = []

    def bettor(player: Any, wait: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            wait()
            try:
                bet = bet_place(
                    user=player, code=round_obj.code, side="UP" if player.pk % 2 else "DOWN", stake_u=stakes[player.pk]
                )
            except errors.RoundLocked:
                with lock:
                    refused.append(player)
            except BaseException as exc:  # noqa: BLE001 (asserted below)
                with lock:
                    failures.append(exc)
            else:
                with lock:
                    accepted.append(bet)

        return run

    def until_enough_accepted() -> None:
        deadline = time.monotonic() + WAIT_S
        while len(accepted) < 16 and time.monotonic() < deadline:
            time.sleep(0.005)

    def locker() -> Any:
        start.wait()
        until_enough_accepted()
        locking.set()
        try:
            return round_lock(code=round_obj.code, acting_user=BEAT, reason="test: across the bets")
        finally:
            locked.set()

    outcome: list[Any] = []
    threads = [_in_thread(locker, outcome)]
    sink: list[Any] = []
    threads += [_in_thread(bettor(p, start.wait), sink) for p in early]
    threads += [_in_thread(bettor(p, lambda: locking.wait(WAIT_S)), sink) for p in racing]
    threads += [_in_thread(bettor(p, lambda: locked.wait(WAIT_S)), sink) for p in late]
    _join(threads)

    assert failures == [] and all(result is None for result in sink)
    [(locked_round, changed)] = outcome
    assert changed and locked_round.status == Round.Status.LOCKED
    assert len(accepted) + len(refused) == 64 and len(accepted) >= 16
    assert set(late) <= set(refused)  # started after the lock committed: all refused
    _assert_locked_round_is_exact(round_obj, accepted)
    fold = Journal.objects.get(reference=f"round:{round_obj.code}:pool:fold")
    assert sum(Entry.objects.filter(journal=fold, amount_u__gt=0).values_list("amount_u", flat=True)) == sum(
        bet.stake_u for bet in accepted
    )
    # No money moved for a refused bet: its player still has everything and no journal touched the account.
    for player in refused:
        assert _available(player) == 5_000_000
        assert not Entry.objects.filter(account=user_account(user=player, currency="USDC"), amount_u__lt=0).exists()
    for bet in accepted:
        assert _available(bet.player) == 5_000_000 - bet.stake_u
    assert_ledger_ok()


@pytest.fixture
def hold_after_transfer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[], None]], None]]:
    """hold(step): run `step` inside every bet's transaction, right after its one call (its stake has moved),
    before its commit."""
    import rounds.betting

    original = rounds.betting._call
    steps: list[Callable[[], None]] = []

    def call(**kwargs: Any) -> Any:
        answer = original(**kwargs)
        for step in steps:
            step()
        return answer

    monkeypatch.setattr(rounds.betting, "_call", call)
    yield steps.append


def test_two_bets_of_one_round_hold_their_transactions_at_the_same_time(
    open_round: Callable[..., Any],
    hold_after_transfer: Callable[[Callable[[], None]], None],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    first, second = FundedPlayerFactory.create_batch(2, balance_u=5_000_000)
    assert first.pk % POOL_STRIPES != second.pk % POOL_STRIPES  # two stripes: no shared balance row
    both_inside = threading.Barrier(2, timeout=WAIT_S)  # broken (and the bets fail) if one waits for the other

    def meet_the_other_bet() -> None:
        both_inside.wait()

    hold_after_transfer(meet_the_other_bet)
    results: list[Any] = []

    def bet_by(player: Any) -> Callable[[], Bet]:
        return lambda: bet_place(user=player, code=round_obj.code, side="UP", stake_u=1_000_000)

    threads = [_in_thread(bet_by(p), results) for p in (first, second)]
    _join(threads)

    assert all(isinstance(result, Bet) for result in results), results
    assert Bet.objects.filter(round=round_obj).count() == 2
    # Neither bet wrote the round's row; its pools so far are its stripes' figures.
    stored = Round.objects.get(pk=round_obj.pk)
    assert (stored.up_pool_u, stored.down_pool_u, stored.up_bets, stored.down_bets) == (0, 0, 0, 0)
    assert pools_live(round_obj=stored) == {"up_pool_u": 2_000_000, "down_pool_u": 0, "up_bets": 2, "down_bets": 0}
    assert pool_held(stored) == 2_000_000 and Account.objects.get(pk=stored.pool_account_id).balance_u == 0
    assert_ledger_ok()


def test_the_lock_waits_for_a_bet_in_flight_and_holds_the_next_one(
    open_round: Callable[..., Any],
    hold_after_transfer: Callable[[Callable[[], None]], None],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    in_flight, next_one = FundedPlayerFactory.create_batch(2, balance_u=5_000_000)
    inside, release = threading.Event(), threading.Event()

    def pause_the_first_bet() -> None:
        if not inside.is_set():
            inside.set()
            assert release.wait(WAIT_S)

    hold_after_transfer(pause_the_first_bet)
    bet_result: list[Any] = []
    lock_result: list[Any] = []
    next_result: list[Any] = []
    threads = [
        _in_thread(lambda: bet_place(user=in_flight, code=round_obj.code, side="UP", stake_u=2_000_000), bet_result)
    ]
    assert inside.wait(WAIT_S)
    threads.append(_in_thread(lambda: round_lock(code=round_obj.code, acting_user=BEAT), lock_result))
    time.sleep(0.5)
    assert lock_result == []  # the lock waits for the bet in flight
    threads.append(
        _in_thread(lambda: bet_place(user=next_one, code=round_obj.code, side="DOWN", stake_u=1_000_000), next_result)
    )
    time.sleep(0.5)
    assert next_result == []  # and the next bet waits behind the lock, not beside the first bet
    release.set()
    _join(threads)

    [bet] = bet_result
    assert isinstance(bet, Bet)
    [(locked, changed)] = lock_result
    assert changed and locked.status == Round.Status.LOCKED
    [refusal] = next_result
    assert isinstance(refusal, errors.RoundLocked)
    assert _available(next_one) == 5_000_000
    _assert_locked_round_is_exact(round_obj, [bet])
    assert_ledger_ok()


def test_two_bets_of_one_player_at_once_give_one_bet_and_one_refusal(
    open_round: Callable[..., Any],
    hold_after_transfer: Callable[[Callable[[], None]], None],
    assert_ledger_ok: Callable[[], None],
) -> None:
    """A double submit: the second bet passes the one-bet check before the first commits, then meets the
    unique constraint. It is refused as AlreadyBet (not a server error) and its stake never moves."""
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    inside, release = threading.Event(), threading.Event()

    def pause_the_first_bet() -> None:
        if not inside.is_set():
            inside.set()
            assert release.wait(WAIT_S)

    hold_after_transfer(pause_the_first_bet)
    first: list[Any] = []
    second: list[Any] = []
    threads = [_in_thread(lambda: bet_place(user=player, code=round_obj.code, side="UP", stake_u=2_000_000), first)]
    assert inside.wait(WAIT_S)
    threads.append(
        _in_thread(lambda: bet_place(user=player, code=round_obj.code, side="DOWN", stake_u=1_000_000), second)
    )
    time.sleep(0.5)  # the second bet is now waiting on the first one's uncommitted row
    release.set()
    _join(threads)

    [bet] = first
    assert isinstance(bet, Bet)
    [refusal] = second
    assert isinstance(refusal, errors.AlreadyBet), refusal
    assert list(Bet.objects.filter(round=round_obj).values_list("player_id", "stake_u")) == [(player.pk, 2_000_000)]
    assert _available(player) == 3_000_000
    assert pool_held(Round.objects.get(pk=round_obj.pk)) == 2_000_000
    assert_ledger_ok()
