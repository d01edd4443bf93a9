"""The reveal at settlement, and its independent verification.

The reveal (``reveal_header``, what settlement stores; ``build_reveal`` adds the payouts) holds the
committed params without the salt, the salt, the official close (or null), the price evidence, the
effective result, the void reason, fee, breakage and (to verify) the payouts keyed by bet_id.
``verify_reveal`` rechecks all of it against the commit and the Merkle root from the bets alone.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from rounds.domain import merkle
from rounds.domain.commitment import (
    check_commit_params,
    format_price,
    is_canonical_price,
    is_exact_int,
    parse_instant,
    round_commit,
    text_of,
)
from rounds.domain.errors import InvalidCommitParams
from rounds.domain.merkle import bet_leaves, sort_bets
from rounds.domain.pool import Result, Settlement, Side, VoidReason, outcome, settle_pool

VOID_WITHOUT_CLOSE = (VoidReason.ORACLE_FAILURE, VoidReason.CANCELLED)
# Known at lock from the bets alone, so settled without a price; the bets are rechecked.
VOID_BY_POOL = (VoidReason.EMPTY, VoidReason.ONE_SIDED)

__all__ = [
    "VOID_BY_POOL",
    "VOID_WITHOUT_CLOSE",
    "Check",
    "VerifyReport",
    "build_reveal",
    "reveal_header",
    "verify_reveal",
]


def _mapping(value: object, *, name: str) -> Mapping[str, object]:
    """Return ``value`` as a mapping or raise TypeError."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be an object")
    return value


def _integer(value: object, *, name: str) -> int:
    """Return ``value`` as an exact int or raise TypeError."""
    if not is_exact_int(value):
        raise TypeError(f"{name} must be an integer")
    return value


def _items(value: object, *, name: str) -> list[object]:
    """Return ``value`` as a list of items (list or tuple) or raise TypeError."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be an array")
    return list(value)


def reveal_header(
    *,
    params: Mapping[str, object],
    close: Decimal | None,
    evidence: Sequence[Mapping[str, object]],
    result: Result,
    void_reason: VoidReason | None,
    fee_u: int,
    breakage_u: int,
    forced: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Return the public reveal of a settled round without the payouts (params include the salt).

    This is what settlement stores on the round; each payout lives on its bet and is merged in as
    ``payouts_u`` (keyed by bet_id) to verify. A forced result or emergency stop adds ``forced``.
    """
    check_commit_params(params)
    reveal: dict[str, object] = {
        "params": {key: value for key, value in params.items() if key != "salt"},
        "salt": params["salt"],
        "close": None if close is None else format_price(price=close),
        "evidence": [dict(item) for item in evidence],
        "result": result.value,
        "void_reason": None if void_reason is None else void_reason.value,
        "fee_u": fee_u,
        "breakage_u": breakage_u,
    }
    if forced:
        reveal["forced"] = dict(forced)
    return reveal


def build_reveal(
    *,
    params: Mapping[str, object],
    close: Decimal | None,
    evidence: Sequence[Mapping[str, object]],
    settlement: Settlement[str],
) -> dict[str, object]:
    """Return the full reveal of a pool settled by ``settle_pool``: ``reveal_header`` plus ``payouts_u``."""
    header = reveal_header(
        params=params,
        close=close,
        evidence=evidence,
        result=settlement.result,
        void_reason=settlement.void_reason,
        fee_u=settlement.fee_u,
        breakage_u=settlement.breakage_u,
    )
    return {**header, "payouts_u": dict(settlement.payouts_u)}


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step: the part checked, whether it passed, and why."""

    part: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of ``verify_reveal``: PASS only if every check passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True if every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def status(self) -> str:
        """``"PASS"`` or ``"FAIL"``."""
        return "PASS" if self.ok else "FAIL"

    @property
    def failed_parts(self) -> tuple[str, ...]:
        """Names of the failed parts, in check order."""
        return tuple(check.part for check in self.checks if not check.ok)


_EXPECTED_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)


def _run(part: str, step: Callable[[], str]) -> Check:
    """Run one check; a raised expected error or a non-empty message means failure."""
    try:
        problem = step()
    except _EXPECTED_ERRORS as exc:
        problem = f"{type(exc).__name__}: {exc}"
    return Check(part=part, ok=not problem, detail=problem or "ok")


def _revealed_params(reveal: Mapping[str, object]) -> Mapping[str, object]:
    """Return the revealed params (without salt)."""
    return _mapping(_mapping(reveal, name="reveal")["params"], name="params")


def _full_params(reveal: Mapping[str, object]) -> dict[str, object]:
    """Return revealed params with the revealed salt merged in."""
    params = dict(_revealed_params(reveal))
    if "salt" in params:
        raise InvalidCommitParams("salt must be revealed separately, not inside params")
    params["salt"] = reveal["salt"]
    return params


def _same_hex(recomputed: str, claimed: object) -> bool:
    """Constant-time comparison of a recomputed hex digest with a claimed one."""
    return hmac.compare_digest(recomputed, text_of(claimed, name="digest").lower())


def _check_commit(reveal: Mapping[str, object], commit: str) -> str:
    """Return '' if the revealed params + salt hash to ``commit``."""
    recomputed = round_commit(params=_full_params(reveal))
    return "" if _same_hex(recomputed, commit) else f"commit mismatch: recomputed {recomputed}"


def _check_merkle(bets: Sequence[Mapping[str, object]], root: str) -> str:
    """Return '' if the bets hash to the published Merkle root."""
    recomputed = merkle.merkle_root(bet_leaves(bets=bets))  # verify_reveal's argument shadows the name
    return "" if _same_hex(recomputed, root) else f"merkle mismatch: recomputed {recomputed}"


def _check_bets(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> str:
    """Return '' if every bet meets the minimum stake and was placed before lock."""
    params = _revealed_params(reveal)
    lock = parse_instant(params["lock_utc"], name="lock_utc")
    minimum = _integer(params["min_stake_u"], name="min_stake_u")
    for bet in sort_bets(bets=bets):
        if _integer(bet["stake_u"], name="stake_u") < minimum:
            return f"bet {bet['bet_id']} stake below min_stake_u"
        if parse_instant(bet["placed_at"], name="placed_at") >= lock:
            return f"bet {bet['bet_id']} placed at or after lock"
    return ""


def _revealed_close(reveal: Mapping[str, object]) -> Decimal | None:
    """Return the revealed close as a Decimal (None if absent)."""
    close = reveal["close"]
    if close is None:
        return None
    if not is_canonical_price(close):
        raise ValueError(f"close {close!r} is not a canonical positive price")
    return Decimal(text_of(close, name="close"))


def _quotes(reveal: Mapping[str, object]) -> list[tuple[str, Decimal]]:
    """Return (source, price) for every evidence entry that quoted a price."""
    quotes = []
    for item in _items(reveal["evidence"], name="evidence"):
        entry = _mapping(item, name="evidence entry")
        if entry["price"] is not None:
            price = Decimal(text_of(entry["price"], name="evidence price"))
            quotes.append((text_of(entry["source"], name="source"), price))
    return quotes


def _check_evidence(reveal: Mapping[str, object], min_agreeing: int) -> str:
    """Return '' if the evidence supports the revealed close (or its absence)."""
    close = _revealed_close(reveal)
    if close is None:
        reason = reveal["void_reason"]
        ok = reason in {r.value for r in (*VOID_WITHOUT_CLOSE, *VOID_BY_POOL)}
        return "" if ok else f"close missing but void_reason is {reason!r}"
    quotes = _quotes(reveal)
    if any(price != close for _, price in quotes):
        return "evidence contains a price different from the close"
    if len({source for source, _ in quotes}) < min_agreeing:
        return f"fewer than {min_agreeing} distinct sources quote the close"
    return ""


def _price_result(reveal: Mapping[str, object]) -> tuple[Result, VoidReason | None]:
    """Return the result implied by reference and close (or the no-close void)."""
    close = _revealed_close(reveal)
    if close is None:
        reason = VoidReason(text_of(reveal["void_reason"], name="void_reason"))
        if reason in VOID_BY_POOL:
            # settle_pool derives EMPTY / ONE_SIDED from the bets; a two-sided pool yields TIE.
            return Result.VOID, None
        if reason not in VOID_WITHOUT_CLOSE:
            raise ValueError(f"no close revealed, yet void_reason is {reason}")
        return Result.VOID, reason
    reference = text_of(_revealed_params(reveal)["reference_close"], name="reference_close")
    result = outcome(reference=Decimal(reference), close=close)
    return result, (VoidReason.TIE if result is Result.VOID else None)


def _expected_settlement(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> Settlement[str]:
    """Recompute the settlement from revealed prices, params and bets."""
    result, reason = _price_result(reveal)
    stakes = [
        (
            text_of(b["bet_id"], name="bet_id"),
            Side(text_of(b["side"], name="side")),
            _integer(b["stake_u"], name="stake_u"),
        )
        for b in sort_bets(bets=bets)
    ]
    fee_bps = _integer(_revealed_params(reveal)["fee_bps"], name="fee_bps")
    return settle_pool(stakes=stakes, result=result, fee_bps=fee_bps, void_reason=reason)


def _check_result(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> str:
    """Return '' if the revealed result and void reason match the recomputation."""
    expected = _expected_settlement(reveal, bets)
    reason = expected.void_reason
    want = (expected.result.value, None if reason is None else reason.value)
    got = (reveal["result"], reveal["void_reason"])
    return "" if got == want else f"result {got} != recomputed {want}"


def _check_payouts(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> str:
    """Return '' if revealed payouts, fee and breakage equal the recomputation."""
    expected = _expected_settlement(reveal, bets)
    payouts = _mapping(reveal["payouts_u"], name="payouts_u")
    got = {key: _integer(value, name="payout") for key, value in payouts.items()}
    if got != dict(expected.payouts_u):
        return "payouts differ from recomputation"
    fee = _integer(reveal["fee_u"], name="fee_u")
    breakage = _integer(reveal["breakage_u"], name="breakage_u")
    want = (expected.fee_u, expected.breakage_u)
    return "" if (fee, breakage) == want else f"fee/breakage {(fee, breakage)} != {want}"


def verify_reveal(
    *,
    reveal: Mapping[str, object],
    commit: str,
    bets: Sequence[Mapping[str, object]],
    merkle_root: str,
    min_agreeing_sources: int = 2,
) -> VerifyReport:
    """Independently recheck commit, Merkle root, bets, evidence, result and payouts."""
    checks = (
        _run("commit", lambda: _check_commit(reveal, commit)),
        _run("merkle", lambda: _check_merkle(bets, merkle_root)),
        _run("bets", lambda: _check_bets(reveal, bets)),
        _run("evidence", lambda: _check_evidence(reveal, min_agreeing_sources)),
        _run("result", lambda: _check_result(reveal, bets)),
        _run("payouts", lambda: _check_payouts(reveal, bets)),
    )
    return VerifyReport(checks=checks)
