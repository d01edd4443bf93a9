"""Tests for rounds.domain.pool: outcome rule and integer parimutuel settlement."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rounds.domain.pool import (
    ConservationViolation,
    DuplicateStakeKey,
    InvalidFeeBps,
    InvalidPrice,
    InvalidResult,
    InvalidStake,
    InvalidVoidReason,
    Result,
    Settlement,
    Side,
    VoidReason,
    check_conservation,
    effective_result,
    fee_and_net,
    outcome,
    settle_pool,
)

UP, DOWN = Side.UP, Side.DOWN
FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def conserved(s: Settlement[Any]) -> bool:
    """Return True if the conservation identity holds."""
    return sum(s.payouts_u.values()) + s.fee_u + s.breakage_u == s.total_u


# ---------------------------------------------------------------- outcome


def test_outcome_up_down_tie() -> None:
    ref = Decimal("21000.50")
    assert outcome(reference=ref, close=Decimal("21000.51")) is Result.UP
    assert outcome(reference=ref, close=Decimal("21000.49")) is Result.DOWN
    assert outcome(reference=ref, close=Decimal("21000.5")) is Result.VOID


@pytest.mark.parametrize(
    "bad",
    [
        21000.5,
        21000,
        "21000",
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal(0),
        Decimal(-1),
    ],
)
def test_outcome_rejects_non_decimal_or_non_positive(bad: object) -> None:
    with pytest.raises(InvalidPrice):
        outcome(reference=Decimal(1), close=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- worked examples


@pytest.mark.parametrize(
    ("fee_bps", "fee", "breakage"),
    # T=4, L=1: fee = min(4 * bps // 10000, 1) is 0 below 2500 bps and 1 from 2500.
    [(0, 0, 1), (1, 0, 1), (500, 0, 1), (2499, 0, 1), (2500, 1, 0), (10_000, 1, 0)],
)
def test_three_up_one_down(fee_bps: int, fee: int, breakage: int) -> None:
    stakes = [("a", UP, 1), ("b", UP, 1), ("c", UP, 1), ("d", DOWN, 1)]
    s = settle_pool(stakes=stakes, result=Result.UP, fee_bps=fee_bps)
    assert dict(s.payouts_u) == {"a": 1, "b": 1, "c": 1, "d": 0}
    assert (s.total_u, s.winning_pool_u, s.losing_pool_u) == (4, 3, 1)
    assert (s.fee_u, s.breakage_u, s.net_pool_u) == (fee, breakage, 4 - fee)
    assert s.result is Result.UP and s.void_reason is None
    assert conserved(s)


def test_fee_is_capped_at_losing_pool() -> None:
    stakes = [("whale", UP, 10**9), ("minnow", DOWN, 1)]
    s = settle_pool(stakes=stakes, result=Result.UP, fee_bps=100)
    # uncapped fee would be (10**9 + 1) * 100 // 10000 = 10_000_000
    assert s.fee_u == 1
    assert dict(s.payouts_u) == {"whale": 10**9, "minnow": 0}
    assert s.breakage_u == 0 and conserved(s)


def test_fee_not_capped_when_losing_pool_is_large() -> None:
    stakes = [("u1", UP, 300), ("u2", UP, 700), ("d1", DOWN, 1000)]
    s = settle_pool(stakes=stakes, result=Result.UP, fee_bps=500)
    assert s.fee_u == 100  # 2000 * 500 // 10000
    assert dict(s.payouts_u) == {"u1": 570, "u2": 1330, "d1": 0}  # 1900 * stake // 1000
    assert s.breakage_u == 0 and conserved(s)


def test_down_wins() -> None:
    stakes = [("u", UP, 5), ("d1", DOWN, 2), ("d2", DOWN, 1)]
    s = settle_pool(stakes=stakes, result=Result.DOWN, fee_bps=0)
    assert dict(s.payouts_u) == {"u": 0, "d1": 5, "d2": 2}  # 8*2//3=5, 8*1//3=2
    assert (s.winning_pool_u, s.losing_pool_u, s.breakage_u) == (3, 5, 1)


# ---------------------------------------------------------------- voids


def test_tie_refunds_exactly() -> None:
    stakes = [("a", UP, 7), ("b", DOWN, 3), ("c", UP, 11)]
    result = outcome(reference=Decimal("100.00"), close=Decimal(100))
    s = settle_pool(stakes=stakes, result=result, fee_bps=500)
    assert s.result is Result.VOID and s.void_reason is VoidReason.TIE
    assert dict(s.payouts_u) == {"a": 7, "b": 3, "c": 11}
    assert (s.fee_u, s.breakage_u, s.total_u) == (0, 0, 21)
    assert (s.winning_pool_u, s.losing_pool_u) == (0, 0)


def test_void_with_explicit_reason() -> None:
    stakes = [("a", UP, 7), ("b", DOWN, 3)]
    s = settle_pool(
        stakes=stakes,
        result=Result.VOID,
        fee_bps=500,
        void_reason=VoidReason.ORACLE_FAILURE,
    )
    assert s.void_reason is VoidReason.ORACLE_FAILURE
    assert dict(s.payouts_u) == {"a": 7, "b": 3}


@pytest.mark.parametrize("result", [Result.UP, Result.DOWN, Result.VOID])
@pytest.mark.parametrize("side", [UP, DOWN])
def test_one_sided_pool_is_void_and_refunds(result: Result, side: Side) -> None:
    stakes = [("a", side, 5), ("b", side, 9)]
    s = settle_pool(stakes=stakes, result=result, fee_bps=10_000)
    assert s.result is Result.VOID and s.void_reason is VoidReason.ONE_SIDED
    assert dict(s.payouts_u) == {"a": 5, "b": 9}
    assert (s.fee_u, s.breakage_u) == (0, 0)


@pytest.mark.parametrize("result", [Result.UP, Result.DOWN, Result.VOID])
def test_empty_round(result: Result) -> None:
    s: Settlement[str] = settle_pool(stakes=[], result=result, fee_bps=100)
    assert s.result is Result.VOID and s.void_reason is VoidReason.EMPTY
    assert dict(s.payouts_u) == {}
    assert (s.total_u, s.fee_u, s.breakage_u) == (0, 0, 0)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("amount", [0, -1, True, 1.0, Decimal(1), "1", None])
def test_bad_stake_amount(amount: object) -> None:
    with pytest.raises(InvalidStake):
        settle_pool(stakes=[("a", UP, amount)], result=Result.UP, fee_bps=0)  # type: ignore[list-item]


@pytest.mark.parametrize("side", ["SIDEWAYS", None, 1, Result.VOID])
def test_bad_side(side: object) -> None:
    with pytest.raises(InvalidStake):
        settle_pool(stakes=[("a", side, 1)], result=Result.UP, fee_bps=0)  # type: ignore[list-item]


def test_plain_string_sides_are_accepted() -> None:
    stakes: list[Any] = [("a", "UP", 1), ("b", "DOWN", 1)]
    s = settle_pool(stakes=stakes, result=Result.UP, fee_bps=0)
    assert dict(s.payouts_u) == {"a": 2, "b": 0}


@pytest.mark.parametrize("row", [("a", UP), ("a", UP, 1, 2), ["a", UP, 1], "abc"])
def test_malformed_row(row: object) -> None:
    with pytest.raises(InvalidStake):
        stakes: list[Any] = [row]
        settle_pool(stakes=stakes, result=Result.UP, fee_bps=0)


def test_duplicate_key() -> None:
    with pytest.raises(DuplicateStakeKey):
        settle_pool(stakes=[("a", UP, 1), ("a", DOWN, 1)], result=Result.UP, fee_bps=0)


@pytest.mark.parametrize("fee_bps", [-1, 10_001, True, 1.5, "100", None])
def test_bad_fee_bps(fee_bps: object) -> None:
    with pytest.raises(InvalidFeeBps):
        settle_pool(stakes=[("a", UP, 1)], result=Result.UP, fee_bps=fee_bps)  # type: ignore[arg-type]


def test_bad_result_and_reason() -> None:
    stakes = [("a", UP, 1), ("b", DOWN, 1)]
    with pytest.raises(InvalidResult):
        settle_pool(stakes=stakes, result="UP", fee_bps=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidVoidReason):
        settle_pool(stakes=stakes, result=Result.UP, fee_bps=0, void_reason=VoidReason.TIE)
    with pytest.raises(InvalidVoidReason):
        settle_pool(stakes=stakes, result=Result.VOID, fee_bps=0, void_reason="TIE")  # type: ignore[arg-type]


def test_payouts_are_read_only() -> None:
    s = settle_pool(stakes=[("a", UP, 1), ("b", DOWN, 1)], result=Result.UP, fee_bps=0)
    with pytest.raises(TypeError):
        s.payouts_u["a"] = 5  # type: ignore[index]


# ---------------------------------------------------------------- properties

stake_rows = st.lists(
    st.tuples(
        st.sampled_from([UP, DOWN]),
        st.one_of(
            st.integers(min_value=1, max_value=10),
            st.integers(min_value=1, max_value=10**12),
        ),
    ),
    max_size=40,
)
results = st.sampled_from([Result.UP, Result.DOWN, Result.VOID])
fees = st.one_of(st.integers(min_value=0, max_value=10_000), st.sampled_from([0, 1, 9_999, 10_000]))


@FAST
@given(rows=stake_rows, result=results, fee_bps=fees)
def test_settlement_invariants(rows: list[tuple[Side, int]], result: Result, fee_bps: int) -> None:
    stakes = [(i, side, amount) for i, (side, amount) in enumerate(rows)]
    s = settle_pool(stakes=stakes, result=result, fee_bps=fee_bps)
    assert conserved(s)
    assert s.total_u == sum(amount for _, amount in rows)
    assert set(s.payouts_u) == {key for key, _, _ in stakes}
    if s.result is Result.VOID:
        assert dict(s.payouts_u) == {key: amount for key, _, amount in stakes}
        assert s.fee_u == 0 and s.breakage_u == 0
        return
    winners = [(k, a) for k, side, a in stakes if side.value == s.result.value]
    assert all(s.payouts_u[k] >= a for k, a in winners)
    assert all(s.payouts_u[k] == 0 for k, side, _ in stakes if side.value != s.result.value)
    assert 0 <= s.breakage_u < len(winners)
    assert 0 <= s.fee_u <= s.losing_pool_u
    assert s.fee_u == min(s.total_u * fee_bps // 10_000, s.losing_pool_u)


@FAST
@given(rows=stake_rows, fee_bps=fees)
def test_payout_is_proportional_floor(rows: list[tuple[Side, int]], fee_bps: int) -> None:
    stakes = [(i, side, amount) for i, (side, amount) in enumerate(rows)]
    s = settle_pool(stakes=stakes, result=Result.UP, fee_bps=fee_bps)
    if s.result is Result.VOID:
        return
    for key, side, amount in stakes:
        if side is UP:
            exact = amount * s.net_pool_u  # payout == floor(exact / W)
            assert s.payouts_u[key] * s.winning_pool_u <= exact < (s.payouts_u[key] + 1) * s.winning_pool_u


@FAST
@given(rows=stake_rows, fee_bps=fees)
def test_void_never_depends_on_fee(rows: list[tuple[Side, int]], fee_bps: int) -> None:
    stakes = [(i, side, amount) for i, (side, amount) in enumerate(rows)]
    s = settle_pool(stakes=stakes, result=Result.VOID, fee_bps=fee_bps)
    assert s.result is Result.VOID
    assert sum(s.payouts_u.values()) == s.total_u


# --- The pieces settlement in SQL shares with settle_pool ---------------------------------------


def test_effective_result_pool_composition_first() -> None:
    assert effective_result(result=Result.UP, up_u=0, down_u=0, void_reason=None) == (Result.VOID, VoidReason.EMPTY)
    assert effective_result(result=Result.UP, up_u=5, down_u=0, void_reason=None) == (
        Result.VOID,
        VoidReason.ONE_SIDED,
    )
    assert effective_result(result=Result.VOID, up_u=5, down_u=3, void_reason=None) == (Result.VOID, VoidReason.TIE)
    assert effective_result(result=Result.VOID, up_u=5, down_u=3, void_reason=VoidReason.CANCELLED) == (
        Result.VOID,
        VoidReason.CANCELLED,
    )
    assert effective_result(result=Result.DOWN, up_u=5, down_u=3, void_reason=None) == (Result.DOWN, None)


def test_fee_and_net() -> None:
    # T = 10_000_000, fee 1% = 100_000, capped by the losing pool.
    assert fee_and_net(result=Result.UP, fee_bps=100, up_u=4_000_000, down_u=6_000_000) == (
        100_000,
        9_900_000,
        4_000_000,
    )
    # The losing pool (50_000) is below 1% of T: the fee is capped at it, so winners never get back less.
    assert fee_and_net(result=Result.UP, fee_bps=100, up_u=9_950_000, down_u=50_000) == (50_000, 9_950_000, 9_950_000)
    assert fee_and_net(result=Result.VOID, fee_bps=100, up_u=4, down_u=6) == (0, 10, 0)
    with pytest.raises(InvalidResult):  # not an effective result: nobody on the losing side
        fee_and_net(result=Result.UP, fee_bps=100, up_u=4, down_u=0)
    with pytest.raises(InvalidFeeBps):
        fee_and_net(result=Result.UP, fee_bps=10_001, up_u=4, down_u=6)
    with pytest.raises(InvalidStake):
        fee_and_net(result=Result.UP, fee_bps=100, up_u=-4, down_u=6)


@FAST
@given(
    up=st.lists(st.integers(1, 10**12), min_size=1, max_size=5),
    down=st.lists(st.integers(1, 10**12), min_size=1, max_size=5),
    fee_bps=st.integers(0, 10_000),
    result=st.sampled_from([Result.UP, Result.DOWN]),
)
def test_fee_and_net_agrees_with_settle_pool(up: list[int], down: list[int], fee_bps: int, result: Result) -> None:
    stakes = [(f"u{i}", UP, s) for i, s in enumerate(up)] + [(f"d{i}", DOWN, s) for i, s in enumerate(down)]
    settlement = settle_pool(stakes=stakes, result=result, fee_bps=fee_bps)
    fee, net, win_u = fee_and_net(result=result, fee_bps=fee_bps, up_u=sum(up), down_u=sum(down))
    assert (fee, net, win_u) == (settlement.fee_u, settlement.net_pool_u, settlement.winning_pool_u)


def test_check_conservation() -> None:
    check_conservation(paid_u=90, fee_u=9, breakage_u=1, total_u=100)
    with pytest.raises(ConservationViolation):
        check_conservation(paid_u=90, fee_u=9, breakage_u=2, total_u=100)
    with pytest.raises(ConservationViolation):
        check_conservation(paid_u=92, fee_u=9, breakage_u=-1, total_u=100)
