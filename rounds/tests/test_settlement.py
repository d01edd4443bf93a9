"""Settlement through the real set-based SQL on PostgreSQL: pool math, VOID rules, idempotence."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from ledger.models import Account, Entry, Journal
from ledger.services import house_account
from ops.actors import BEAT
from ops.models import Proposal
from rounds import errors
from rounds.domain.pool import Result, Side, VoidReason, settle_pool
from rounds.models import Bet, Round
from rounds.settlement import round_settle, settlement_preview
from rounds.tests.factories import pool_held

pytestmark = pytest.mark.django_db


def balances(*bets: Any) -> list[int]:
    return [Account.objects.get(pk=b.account_id).balance_u for b in bets]


def settlement_entries(code: str) -> list[tuple[str, int]]:
    return sorted(
        Entry.objects.filter(journal__reference=f"round:{code}:settlement").values_list("account__name", "amount_u")
    )


def house_settlement_amounts(code: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT amount_u FROM ledger_entries WHERE account = 'house' AND ref_type = 'settlement' AND ref_id = %s"
            " ORDER BY amount_u",
            [f"round:{code}:settlement"],
        )
        return [row[0] for row in cursor.fetchall()]


def test_normal_split_with_rounding(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    low_min_stake: None,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
    settings: Any,
) -> None:
    settings.FEE_BPS = 100
    round_obj = open_round("20250908", reference="100")
    ups = [place(round_obj, "UP", 1) for _ in range(3)]
    down = place(round_obj, "DOWN", 1)
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "101")

    settled, changed = round_settle(code=round_obj.code, acting_user=BEAT)

    # T=4, fee = min(4*100//10000, 1) = 0, net 4, each UP gets 1*4//3 = 1, breakage 1.
    assert changed and settled.status == Round.Status.SETTLED and settled.result == "UP"
    assert (settled.fee_u, settled.breakage_u, settled.payouts_total_u, settled.winners) == (0, 1, 3, 3)
    assert balances(*ups, down) == [1, 1, 1, 0]
    assert [b.payout_u for b in Bet.objects.filter(pk__in=[b.pk for b in [*ups, down]]).order_by("pk")] == [1, 1, 1, 0]
    expected = settle_pool(
        stakes=[(b.pk, Side(b.side), b.stake_u) for b in [*ups, down]], result=Result.UP, fee_bps=100
    )
    assert (expected.fee_u, expected.breakage_u) == (settled.fee_u, settled.breakage_u)
    assert house_settlement_amounts(round_obj.code) == [1]  # breakage; a zero fee has no entry
    assert Account.objects.get(pk=settled.pool_account_id).balance_u == 0
    assert Journal.objects.get(reference=f"round:{round_obj.code}:settlement").type == "settlement"
    assert_ledger_ok()


def test_fee_is_a_separate_house_entry_from_breakage(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    low_min_stake: None,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
    settings: Any,
) -> None:
    settings.FEE_BPS = 100
    round_obj = open_round("20250908", reference="100")
    stakes = [333_334, 333_333, 333_333]
    winners = [place(round_obj, "DOWN", stake) for stake in stakes]
    place(round_obj, "UP", 1_000_001)
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "99.5")

    settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)

    expected = settle_pool(
        stakes=[(1, Side.UP, 1_000_001), *[(i + 2, Side.DOWN, s) for i, s in enumerate(stakes)]],
        result=Result.DOWN,
        fee_bps=100,
    )
    assert settled.result == "DOWN"
    assert (settled.fee_u, settled.breakage_u) == (expected.fee_u, expected.breakage_u) == (20_000, 2)
    assert house_settlement_amounts(round_obj.code) == [2, 20_000]
    assert balances(*winners) == [expected.payouts_u[2], expected.payouts_u[3], expected.payouts_u[4]]
    assert balances(*winners) == [660_001, 659_999, 659_999]
    assert_ledger_ok()


def test_fee_is_capped_at_the_losing_pool(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    low_min_stake: None,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
    settings: Any,
) -> None:
    settings.FEE_BPS = 100
    round_obj = open_round("20250908", reference="100")
    winner = place(round_obj, "UP", 10**9)
    loser = place(round_obj, "DOWN", 1)
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "100.01")

    settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)

    assert (settled.fee_u, settled.breakage_u) == (1, 0)  # min(10**7, 1)
    assert balances(winner, loser) == [10**9, 0]  # never less than the stake back
    assert house_settlement_amounts(round_obj.code) == [1]
    assert_ledger_ok()


def test_tie_is_void_with_exact_refunds(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908", reference="100.50")
    bets = [place(round_obj, "UP", 3_000_000), place(round_obj, "DOWN", 7_000_001)]
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "100.5")

    settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)

    assert (settled.status, settled.result, settled.void_reason) == (Round.Status.VOID, "VOID", "TIE")
    assert balances(*bets) == [3_000_000, 7_000_001]
    assert (settled.fee_u, settled.breakage_u) == (0, 0)
    assert house_settlement_amounts(round_obj.code) == []
    assert_ledger_ok()


@pytest.mark.parametrize("close", ["101", "99"])
def test_one_sided_pool_is_void_whatever_the_result(
    close: str,
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908", reference="100")
    bets = [place(round_obj, "UP", 2_000_000), place(round_obj, "UP", 5_000_000)]
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), close)

    settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)

    assert (settled.status, settled.void_reason) == (Round.Status.VOID, "ONE_SIDED")
    assert balances(*bets) == [2_000_000, 5_000_000]
    assert_ledger_ok()


@pytest.mark.parametrize("forced", ["UP", "DOWN"])
def test_forced_result_on_one_sided_pool_is_still_void(
    forced: str,
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    force_settle: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    bet = place(round_obj, "DOWN", 4_000_000)
    lock_and_reach_settlement(round_obj)

    settled = force_settle(round_obj, forced)

    assert (settled.result, settled.void_reason) == ("VOID", VoidReason.ONE_SIDED.value)
    assert balances(bet) == [4_000_000]
    assert_ledger_ok()


def test_empty_round_is_void_and_posts_nothing(
    open_round: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    lock_and_reach_settlement(round_obj)
    settled, changed = round_settle(code=round_obj.code, acting_user=BEAT)
    assert changed and (settled.status, settled.void_reason) == (Round.Status.VOID, "EMPTY")
    assert not Journal.objects.filter(reference__startswith=f"round:{round_obj.code}").exists()
    assert_ledger_ok()


def test_forcing_from_a_state_other_than_locked_is_refused(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    make_staff: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
) -> None:
    from rounds.overrides import force_result_propose

    finance = make_staff(role="finance")
    round_obj = open_round("20250908")
    bet = place(round_obj, "UP", 2_000_000)
    place(round_obj, "DOWN", 2_000_000)
    for result in ("UP", "DOWN"):
        with pytest.raises(errors.RoundNotLocked):
            force_result_propose(code=round_obj.code, result=result, reason="test", evidence="e", acting_user=finance)
    round_obj.refresh_from_db()
    assert round_obj.status == Round.Status.OPEN and balances(bet) == [0]
    assert pool_held(round_obj) == 4_000_000
    assert not Proposal.objects.exists()

    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "101")
    round_settle(code=round_obj.code, acting_user=BEAT)
    before = list(Entry.objects.values_list("id", flat=True))
    with pytest.raises(errors.RoundAlreadySettled, match="already SETTLED"):
        force_result_propose(code=round_obj.code, result="DOWN", reason="late", evidence="e", acting_user=finance)
    round_obj.refresh_from_db()
    assert round_obj.result == "UP"
    assert list(Entry.objects.values_list("id", flat=True)) == before
    assert not Proposal.objects.exists()


def test_forced_result_needs_a_reason(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
    make_staff: Callable[..., Any],
) -> None:
    from ops.approvals import ReasonRequired
    from rounds.overrides import force_result_propose

    round_obj = open_round("20250908")
    place(round_obj, "UP", 2_000_000)
    lock_and_reach_settlement(round_obj)
    with pytest.raises(ReasonRequired):
        force_result_propose(
            code=round_obj.code, result="UP", reason=" ", evidence="e", acting_user=make_staff(role="finance")
        )
    round_obj.refresh_from_db()
    assert round_obj.status == Round.Status.LOCKED
    assert Account.objects.get(pk=round_obj.pool_account_id).balance_u == 2_000_000


def test_settle_before_settle_time_is_refused(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    clock: Any,
    prices: Any,
) -> None:
    from rounds.services import round_lock

    round_obj = open_round("20250908")
    place(round_obj, "UP", 2_000_000)
    place(round_obj, "DOWN", 2_000_000)
    clock.set(round_obj.lock_at)
    round_lock(code=round_obj.code, acting_user=BEAT)
    prices.set(round_obj.open_at.date(), "101")
    with pytest.raises(errors.SettleTooEarly):
        round_settle(code=round_obj.code, acting_user=BEAT)
    round_obj.refresh_from_db()
    assert round_obj.status == Round.Status.LOCKED


def test_settling_twice_gives_one_set_of_entries(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    place(round_obj, "UP", 2_000_000)
    place(round_obj, "DOWN", 3_000_000)
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "101")
    round_settle(code=round_obj.code, acting_user=BEAT)
    first = settlement_entries(round_obj.code)
    _, changed = round_settle(code=round_obj.code, acting_user=BEAT)
    assert not changed
    assert settlement_entries(round_obj.code) == first
    assert Journal.objects.filter(type="settlement").count() == 1
    assert_ledger_ok()


def test_dry_run_breakdown_moves_nothing(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
) -> None:
    round_obj = open_round("20250908")
    place(round_obj, "UP", 3_000_000)
    place(round_obj, "DOWN", 1_000_000)
    lock_and_reach_settlement(round_obj)
    entries = Entry.objects.count()
    breakdown = settlement_preview(code=round_obj.code, result=Result.UP)
    assert (breakdown.total_u, breakdown.fee_u, breakdown.payouts_total_u, breakdown.breakage_u) == (
        4_000_000,
        40_000,
        3_960_000,
        0,
    )
    assert Entry.objects.count() == entries
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED


@pytest.mark.django_db(transaction=True)
def test_concurrent_settlements_post_once(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    bets = [place(round_obj, side, 1_000_000 + i) for i, side in enumerate(["UP", "DOWN"] * 5)]
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "99")
    barrier = threading.Barrier(4)
    outcomes: list[Any] = []

    def settle() -> None:
        try:
            barrier.wait()
            outcomes.append(round_settle(code=round_obj.code, acting_user=BEAT)[1])
        except Exception as exc:  # noqa: BLE001 (recorded and asserted below)
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=settle) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [False, False, False, True]
    assert Journal.objects.filter(type="settlement").count() == 1
    expected = settle_pool(stakes=[(b.pk, Side(b.side), b.stake_u) for b in bets], result=Result.DOWN, fee_bps=100)
    assert (expected.fee_u, expected.breakage_u) == (100_000, 2)
    assert Entry.objects.filter(journal__type="settlement").count() == 5 + 1 + 2  # winners, pool, fee, breakage
    assert balances(*bets) == [expected.payouts_u[b.pk] for b in bets]
    assert sum(balances(*bets)) + house_account(currency="USDC").balance_u == sum(b.stake_u for b in bets)
    assert_ledger_ok()


def test_house_manual_fee_query_runs_verbatim(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
) -> None:
    round_obj = open_round("20250908")
    place(round_obj, "UP", 3_000_000)
    place(round_obj, "DOWN", 1_000_001)
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "101")
    settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)
    with connection.cursor() as cursor:
        cursor.execute(
            """
   SELECT DATE(ts) as date, SUM(amount_u) as fees_collected_u
   FROM ledger_entries
   WHERE account = 'house'
      AND ref_type = 'settlement'
      AND DATE(ts) = CURRENT_DATE
   GROUP BY DATE(ts);
"""
        )
        rows = cursor.fetchall()
    assert settled.fee_u is not None and settled.breakage_u is not None
    assert len(rows) == 1 and rows[0][1] == settled.fee_u + settled.breakage_u == 40_000
