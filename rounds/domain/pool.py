"""Integer parimutuel settlement of one Up/Down round (reference implementation).

All amounts are ``int`` micro-units (names end in ``_u``).  With T the total
pool, W the winning pool and L the losing pool:

    fee       = min(T * fee_bps // 10000, L)      (a winner never gets back < stake)
    net       = T - fee
    payout_i  = stake_i * net // W                 (losers get 0)
    breakage  = net - sum(payout_i)                (kept by the house)
    sum(payout_i) + fee + breakage == T            (checked on every call)

Bounds: net >= W, so payout_i >= stake_i * W // W == stake_i; each floor
drops less than 1, so 0 <= breakage <= (number of winning stakes) - 1.

A round is VOID (every stake refunded exactly, fee 0, breakage 0) when the
pool is empty (``EMPTY``), only one side has stakes (``ONE_SIDED``), or the
result given is VOID (reason supplied by the caller, ``TIE`` by default).
Pool-composition reasons take precedence: they are known at lock, before
any price.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

BPS_DENOMINATOR = 10_000

__all__ = [
    "BPS_DENOMINATOR",
    "ConservationViolation",
    "DuplicateStakeKey",
    "InvalidFeeBps",
    "InvalidPrice",
    "InvalidResult",
    "InvalidStake",
    "InvalidVoidReason",
    "PoolError",
    "Result",
    "Settlement",
    "Side",
    "VoidReason",
    "check_conservation",
    "effective_result",
    "fee_and_net",
    "outcome",
    "settle_pool",
]


class Side(StrEnum):
    """The side a bet is placed on."""

    UP = "UP"
    DOWN = "DOWN"


class Result(StrEnum):
    """The result of a round."""

    UP = "UP"
    DOWN = "DOWN"
    VOID = "VOID"


class VoidReason(StrEnum):
    """Why a round was voided (all stakes refunded)."""

    EMPTY = "EMPTY"
    ONE_SIDED = "ONE_SIDED"
    TIE = "TIE"
    ORACLE_FAILURE = "ORACLE_FAILURE"
    CANCELLED = "CANCELLED"


class PoolError(ValueError):
    """Base class for invalid settlement inputs."""


class InvalidStake(PoolError):
    """A stake is not a positive ``int`` or its side is not UP/DOWN."""


class DuplicateStakeKey(PoolError):
    """Two stakes share the same key."""


class InvalidFeeBps(PoolError):
    """``fee_bps`` is not an ``int`` in 0..10000."""


class InvalidPrice(PoolError):
    """A price is not a finite, positive ``Decimal``."""


class InvalidResult(PoolError):
    """The result is not a ``Result`` member."""


class InvalidVoidReason(PoolError):
    """A void reason was given with a non-VOID result, or is not a VoidReason."""


class ConservationViolation(AssertionError):
    """sum(payouts) + fee + breakage != total (a bug, never expected)."""


@dataclass(frozen=True, slots=True)
class Settlement(Generic[K]):
    """Outcome of settling one pool; ``payouts_u`` has every key (losers 0)."""

    result: Result
    void_reason: VoidReason | None
    payouts_u: Mapping[K, int]
    total_u: int
    up_pool_u: int
    down_pool_u: int
    winning_pool_u: int
    losing_pool_u: int
    fee_u: int
    net_pool_u: int
    breakage_u: int

    @property
    def is_void(self) -> bool:
        """True if every stake is refunded."""
        return self.result is Result.VOID


def _check_price(value: object, *, name: str) -> Decimal:
    """Return ``value`` if it is a finite positive Decimal, else raise InvalidPrice."""
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidPrice(f"{name} must be a finite positive Decimal, got {value!r}")
    return value


def outcome(*, reference: Decimal, close: Decimal) -> Result:
    """Return UP if close > reference, DOWN if close < reference, VOID on a tie."""
    ref = _check_price(reference, name="reference")
    cls = _check_price(close, name="close")
    if cls > ref:
        return Result.UP
    if cls < ref:
        return Result.DOWN
    return Result.VOID


def _check_fee_bps(fee_bps: object) -> int:
    """Return ``fee_bps`` if it is an int (not bool) in 0..10000."""
    if type(fee_bps) is not int or not 0 <= fee_bps <= BPS_DENOMINATOR:
        raise InvalidFeeBps(f"fee_bps must be an int in 0..10000, got {fee_bps!r}")
    return fee_bps


def _check_row_shape(row: object) -> None:
    """Raise InvalidStake unless ``row`` is a 3-tuple."""
    if not isinstance(row, tuple) or len(row) != 3:
        raise InvalidStake(f"stake must be a (key, side, stake_u) tuple, got {row!r}")


def _check_stakes(stakes: Sequence[tuple[K, Side, int]]) -> list[tuple[K, Side, int]]:
    """Validate stakes: unique keys, Side values, positive int amounts."""
    checked: list[tuple[K, Side, int]] = []
    seen: set[K] = set()
    for row in stakes:
        _check_row_shape(row)
        key, side, amount = row
        if type(amount) is not int or amount <= 0:
            raise InvalidStake(f"stake for {key!r} must be a positive int, got {amount!r}")
        if side not in (Side.UP, Side.DOWN) or not isinstance(side, str):
            raise InvalidStake(f"side for {key!r} must be UP or DOWN, got {side!r}")
        if key in seen:
            raise DuplicateStakeKey(f"duplicate stake key {key!r}")
        seen.add(key)
        checked.append((key, Side(side), amount))
    return checked


def effective_result(
    *, result: Result, up_u: int, down_u: int, void_reason: VoidReason | None
) -> tuple[Result, VoidReason | None]:
    """Return the effective result and void reason: pool composition (EMPTY, ONE_SIDED) first, then TIE."""
    if up_u == 0 and down_u == 0:
        return Result.VOID, VoidReason.EMPTY
    if up_u == 0 or down_u == 0:
        return Result.VOID, VoidReason.ONE_SIDED
    if result is Result.VOID:
        return Result.VOID, void_reason or VoidReason.TIE
    return result, None


def _check_result(result: object, void_reason: object) -> Result:
    """Validate the result and that a void reason is only given with VOID."""
    if not isinstance(result, Result):
        raise InvalidResult(f"result must be a Result, got {result!r}")
    if void_reason is not None and not isinstance(void_reason, VoidReason):
        raise InvalidVoidReason(f"void_reason must be a VoidReason, got {void_reason!r}")
    if void_reason is not None and result is not Result.VOID:
        raise InvalidVoidReason(f"void_reason given with non-VOID result {result}")
    return result


def settle_pool(
    *,
    stakes: Sequence[tuple[K, Side, int]],
    result: Result,
    fee_bps: int,
    void_reason: VoidReason | None = None,
) -> Settlement[K]:
    """Settle ``(key, side, stake_u)`` stakes for ``result`` with the capped fee."""
    _check_result(result, void_reason)
    fee_bps = _check_fee_bps(fee_bps)
    rows = _check_stakes(stakes)
    up_u = sum(amount for _, side, amount in rows if side is Side.UP)
    down_u = sum(amount for _, side, amount in rows if side is Side.DOWN)
    effective, reason = effective_result(result=result, up_u=up_u, down_u=down_u, void_reason=void_reason)
    if effective is Result.VOID:
        return _void(rows=rows, reason=reason, up_u=up_u, down_u=down_u)
    return _pay(rows=rows, winner=Side(effective), fee_bps=fee_bps, up_u=up_u, down_u=down_u)


def _void(
    *,
    rows: list[tuple[K, Side, int]],
    reason: VoidReason | None,
    up_u: int,
    down_u: int,
) -> Settlement[K]:
    """Refund every stake exactly: no fee, no breakage."""
    payouts = {key: amount for key, _, amount in rows}
    total = up_u + down_u
    check_conservation(paid_u=sum(payouts.values()), fee_u=0, breakage_u=0, total_u=total)
    return Settlement(
        result=Result.VOID,
        void_reason=reason,
        payouts_u=MappingProxyType(payouts),
        total_u=total,
        up_pool_u=up_u,
        down_pool_u=down_u,
        winning_pool_u=0,
        losing_pool_u=0,
        fee_u=0,
        net_pool_u=total,
        breakage_u=0,
    )


def _pay(
    *,
    rows: list[tuple[K, Side, int]],
    winner: Side,
    fee_bps: int,
    up_u: int,
    down_u: int,
) -> Settlement[K]:
    """Pay winners ``stake * net // W`` after the capped fee; losers get 0."""
    total = up_u + down_u
    fee, net, win_u = fee_and_net(result=Result(winner), fee_bps=fee_bps, up_u=up_u, down_u=down_u)
    lose_u = total - win_u
    payouts = {key: (amount * net // win_u if side is winner else 0) for key, side, amount in rows}
    breakage = net - sum(payouts.values())
    check_conservation(paid_u=sum(payouts.values()), fee_u=fee, breakage_u=breakage, total_u=total)
    return Settlement(
        result=Result(winner),
        void_reason=None,
        payouts_u=MappingProxyType(payouts),
        total_u=total,
        up_pool_u=up_u,
        down_pool_u=down_u,
        winning_pool_u=win_u,
        losing_pool_u=lose_u,
        fee_u=fee,
        net_pool_u=net,
        breakage_u=breakage,
    )


def fee_and_net(*, result: Result, fee_bps: int, up_u: int, down_u: int) -> tuple[int, int, int]:
    """Return (fee, net, winning pool) for an effective result; VOID takes no fee: (0, total, 0).

    ``result`` must already be effective (see ``effective_result``): a winning side has stakes on both sides.
    """
    _check_result(result, None)
    fee_bps = _check_fee_bps(fee_bps)
    if type(up_u) is not int or type(down_u) is not int or min(up_u, down_u) < 0:
        raise InvalidStake(f"pool sides must be non-negative ints, got {up_u!r} and {down_u!r}")
    total = up_u + down_u
    if result is Result.VOID:
        return 0, total, 0
    win_u, lose_u = (up_u, down_u) if result is Result.UP else (down_u, up_u)
    if win_u == 0 or lose_u == 0:
        raise InvalidResult(f"{result} is not an effective result for pools {up_u} UP / {down_u} DOWN")
    fee = min(total * fee_bps // BPS_DENOMINATOR, lose_u)
    return fee, total - fee, win_u


def check_conservation(*, paid_u: int, fee_u: int, breakage_u: int, total_u: int) -> None:
    """Raise ConservationViolation unless paid + fee + breakage == total, each >= 0."""
    if paid_u + fee_u + breakage_u != total_u or min(fee_u, breakage_u, paid_u) < 0:
        raise ConservationViolation(f"paid {paid_u} + fee {fee_u} + breakage {breakage_u} != total {total_u}")
