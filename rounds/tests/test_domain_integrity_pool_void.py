"""Reveals of rounds voided by pool composition (empty, one-sided) carry no close; the bets decide."""

from __future__ import annotations

from rounds.domain.commitment import round_commit
from rounds.domain.merkle import bet_leaves, merkle_root
from rounds.domain.pool import Result, Side, VoidReason, settle_pool
from rounds.domain.reveal import build_reveal, verify_reveal
from rounds.tests.test_domain_integrity import bet, params_for


def _reveal(bets: list[dict[str, object]], claimed: VoidReason) -> tuple[dict[str, object], str, str]:
    params = params_for()
    stakes = [(str(b["bet_id"]), Side(str(b["side"])), int(b["stake_u"])) for b in bets]  # type: ignore[call-overload]
    settlement = settle_pool(stakes=stakes, result=Result.VOID, fee_bps=500, void_reason=claimed)
    reveal = build_reveal(params=params, close=None, evidence=[], settlement=settlement)
    reveal["void_reason"] = claimed.value
    return reveal, round_commit(params=params), merkle_root(bet_leaves(bets=bets))


def test_one_sided_and_empty_rounds_pass_without_a_close() -> None:
    one_sided = [bet("b-001", "UP", 1_000_000), bet("b-002", "UP", 2_000_000)]
    for bets, reason in ((one_sided, VoidReason.ONE_SIDED), ([], VoidReason.EMPTY)):
        reveal, commit, root = _reveal(bets, reason)
        assert verify_reveal(reveal=reveal, commit=commit, bets=bets, merkle_root=root).ok


def test_a_two_sided_round_cannot_claim_a_pool_void() -> None:
    bets = [bet("b-001", "UP", 1_000_000), bet("b-002", "DOWN", 2_000_000)]
    reveal, commit, root = _reveal(bets, VoidReason.ONE_SIDED)
    report = verify_reveal(reveal=reveal, commit=commit, bets=bets, merkle_root=root)
    assert report.failed_parts == ("result",)
