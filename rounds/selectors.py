"""Reads for rounds and bets: the current round, a player's bets, public bet records, proofs, verification."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Sum
from django.utils import timezone

from ledger.selectors import register_wallet_component
from ops.stuck import StuckFinding, age_limit_s, register_stuck_source
from rounds import clock
from rounds.domain.calendar import OutsideCalendarRange, code_for, next_session
from rounds.domain.commitment import commit_params, format_instant
from rounds.domain.merkle import bet_leaf, bet_leaves, merkle_proof, verify_proof
from rounds.domain.pool import Result, Side, VoidReason, settle_pool
from rounds.domain.reveal import verify_reveal

from .errors import BetNotFound, ProofNotReady, RoundNotFound
from .models import Bet, Round
from .pools import round_with_pools
from .proofs import proof_refused, stored_proof

NEW_YORK = ZoneInfo("America/New_York")


@register_wallet_component("in_open_bets_u")
def user_open_stake_rows(*, user: Any) -> QuerySet[Bet, tuple[str, int]]:
    """The player's stakes in rounds not yet settled as (currency, total) rows: the wallet's in_open_bets_u."""
    return (
        Bet.objects.filter(player=user, round__status__in=Round.UNSETTLED)
        .order_by()
        .values("round__currency")
        .annotate(total=Sum("stake_u"))
        .values_list("round__currency", "total")
    )


def user_open_stakes(*, user: Any) -> dict[str, int]:
    """Return the player's stakes in rounds not yet settled, per currency."""
    return {currency: int(total or 0) for currency, total in user_open_stake_rows(user=user)}


def round_params(*, round_obj: Round) -> dict[str, object]:
    """Return the committed parameters of a round (salt included: keep them server-side)."""
    return commit_params(
        code=round_obj.code,
        instrument=round_obj.instrument,
        reference_close=Decimal(round_obj.reference_close),
        open_utc=round_obj.open_at,
        lock_utc=round_obj.lock_at,
        close_utc=round_obj.close_at,
        settle_after_utc=round_obj.settle_after,
        fee_bps=round_obj.fee_bps,
        min_stake_u=round_obj.min_stake_u,
        previous_commit=round_obj.previous_commit,
        salt=round_obj.salt,
        rules_version=round_obj.rules_version,
    )


def round_get(*, code: str) -> Round:
    """Return the round with this code or raise RoundNotFound."""
    try:
        return Round.objects.get(code=code)
    except Round.DoesNotExist as exc:
        raise RoundNotFound(f"There is no round {code}.") from exc


@functools.lru_cache(maxsize=8)
def _session_code_on_or_after(day: date) -> str:
    try:
        return code_for(next_session(on_or_after=day))
    except OutsideCalendarRange:
        return ""


def round_current_code() -> str:
    """The code of today's session (New York date) or the next one; "" beyond the calendar.

    Computed once per New York date per process (the calendar is fixed for the life of a process).
    """
    return _session_code_on_or_after(clock.now().astimezone(NEW_YORK).date())


def round_current() -> Round:
    """Return the round of today's session (New York date) or, failing that, the next open one (else the last).

    With its stripes' pool figures (`rounds.pools.pools_show` shows them while it is OPEN), in one SQL
    statement written once per process (`rounds.pools.round_with_pools`).
    """
    found = round_with_pools(code=round_current_code(), current=True)
    if found is None:
        raise RoundNotFound("No round has been opened yet.")
    return found


def round_public(*, code: str) -> Round:
    """Return the round with this code with its live pool figures (one statement), or raise RoundNotFound."""
    found = round_with_pools(code=code)
    if found is None:
        raise RoundNotFound(f"There is no round {code}.")
    return found


def player_bets(*, user: Any) -> QuerySet[Bet]:
    """Return the player's own bets, newest first, with their rounds."""
    return Bet.objects.filter(player=user).select_related("round").order_by("-id")


def bet_get_for_player(*, user: Any, bet_id: str) -> Bet:
    """Return one of the player's own bets or raise BetNotFound."""
    try:
        return Bet.objects.select_related("round").get(bet_id=bet_id, player=user)
    except (Bet.DoesNotExist, ValueError, ValidationError) as exc:  # ValidationError: not a UUID
        raise BetNotFound(f"You have no bet {bet_id}.") from exc


def bet_records(*, round_obj: Round) -> list[dict[str, object]]:
    """Return the public records of every bet of a round, as the Merkle leaves hash them."""
    rows = Bet.objects.filter(round=round_obj).values_list(
        "bet_id", "player__public_id", "side", "stake_u", "placed_at"
    )
    return [
        {
            "bet_id": str(bet_id),
            "player_id": str(player_id),
            "side": side,
            "stake_u": int(stake_u),
            "placed_at": format_instant(at=placed_at),
        }
        for bet_id, player_id, side, stake_u, placed_at in rows.iterator(chunk_size=10_000)
    ]


def bet_record(*, bet: Bet) -> dict[str, object]:
    """Return the public record of one bet."""
    return {
        "bet_id": str(bet.bet_id),
        "player_id": str(bet.player.public_id),
        "side": bet.side,
        "stake_u": bet.stake_u,
        "placed_at": format_instant(at=bet.placed_at),
    }


def bet_payouts(*, round_obj: Round) -> dict[str, int]:
    """Return every bet's payout keyed by bet_id (losers 0)."""
    rows = Bet.objects.filter(round=round_obj).values_list("bet_id", "payout_u")
    return {str(bet_id): int(payout or 0) for bet_id, payout in rows.iterator(chunk_size=10_000)}


def round_leaves(*, round_obj: Round) -> list[bytes]:
    """Return the round's Merkle leaves in leaf order (bet_id ascending).

    The leaf stored when each bet was placed is used; if any is missing (a row written some other
    way), every leaf is recomputed from the public records instead. PostgreSQL orders uuids by their
    bytes, which is the code-point order of their lowercase text form that the leaves are sorted by.
    """
    rows = list(Bet.objects.filter(round=round_obj).order_by("bet_id").values_list("leaf", flat=True))
    stored = [bytes(leaf) for leaf in rows if leaf is not None]
    if len(stored) != len(rows):
        return bet_leaves(bets=bet_records(round_obj=round_obj))
    return stored


@dataclass(frozen=True)
class BetProof:
    """A Merkle inclusion proof of one bet in its round's published root."""

    record: dict[str, object]
    leaf: str
    proof: list[tuple[str, str]]
    root: str


def bet_proof(*, user: Any, bet_id: str) -> BetProof:
    """Return the inclusion proof of one of the player's own bets (once its round is locked).

    The proof is read from the tree stored at lock (a few queries, whatever the round's size; see
    `rounds/proofs.py`), or computed from every leaf for a round locked before trees were stored. Either
    way it is served only if it folds the bet's own leaf up to the round's published root.
    """
    bet = bet_get_for_player(user=user, bet_id=bet_id)
    round_obj = bet.round
    if round_obj.status == Round.Status.OPEN or not round_obj.merkle_root:
        raise ProofNotReady(f"Round {round_obj.code} is still open; proofs exist from its lock.")
    record = bet_record(bet=bet)
    leaf = bet_leaf(**record)  # type: ignore[arg-type]
    proof = stored_proof(round_obj=round_obj, bet=bet)
    if proof is None:
        proof = _proof_from_every_leaf(round_obj=round_obj, bet=bet)
    if not verify_proof(leaf=leaf, proof=proof, root=round_obj.merkle_root):
        raise proof_refused(f"The proof of bet {bet.bet_id} does not reach round {round_obj.code}'s published root.")
    return BetProof(record=record, leaf=leaf.hex(), proof=proof, root=round_obj.merkle_root)


def _proof_from_every_leaf(*, round_obj: Round, bet: Bet) -> list[tuple[str, str]]:
    """Return the bet's proof computed from every leaf of its round (rounds locked before trees were stored)."""
    ids = [
        str(bet_id)
        for bet_id in Bet.objects.filter(round=round_obj).order_by("bet_id").values_list("bet_id", flat=True)
    ]
    return merkle_proof(round_leaves(round_obj=round_obj), ids.index(str(bet.bet_id)))


# --- Verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyLine:
    """One checked part of a round's verification."""

    part: str
    ok: bool
    detail: str


def _forced_checks(
    reveal: Mapping[str, Any], bets: list[dict[str, object]], payouts: Mapping[str, int]
) -> list[VerifyLine]:
    """Check a forced result: the payouts must follow from the forced result and the bets."""
    forced = reveal["forced"]
    result = Result(forced["result"])
    reason = VoidReason.CANCELLED if result is Result.VOID else None
    expected = settle_pool(
        stakes=[(str(b["bet_id"]), Side(str(b["side"])), int(b["stake_u"])) for b in bets],  # type: ignore[call-overload]
        result=result,
        fee_bps=int(reveal["params"]["fee_bps"]),
        void_reason=reason,
    )
    want = (expected.result.value, expected.void_reason.value if expected.void_reason else None)
    got = (reveal.get("result"), reveal.get("void_reason"))
    lines = [
        VerifyLine(
            "evidence",
            True,
            f"result forced by {forced.get('operator')} (approved by {forced.get('approved_by') or '-'}): "
            f"{forced.get('reason')}; evidence: {forced.get('evidence') or '-'}",
        ),
        VerifyLine("result", got == want, "ok" if got == want else f"result {got} != recomputed {want}"),
    ]
    same = dict(payouts) == dict(expected.payouts_u) and (reveal.get("fee_u"), reveal.get("breakage_u")) == (
        expected.fee_u,
        expected.breakage_u,
    )
    lines.append(VerifyLine("payouts", same, "ok" if same else "payouts, fee or breakage differ from recomputation"))
    return lines


def round_verify(*, round_obj: Round) -> list[VerifyLine]:
    """Recompute a finished round from what is public: commit, root, reveal, bets and payouts."""
    if not round_obj.is_finished or not round_obj.reveal:
        return [VerifyLine("status", False, f"round {round_obj.code} is {round_obj.status}; nothing revealed yet")]
    bets = bet_records(round_obj=round_obj)
    payouts = bet_payouts(round_obj=round_obj)
    reveal: dict[str, Any] = {**round_obj.reveal, "payouts_u": payouts}
    report = verify_reveal(reveal=reveal, commit=round_obj.commit, bets=bets, merkle_root=round_obj.merkle_root)
    lines = [VerifyLine(c.part, c.ok, c.detail) for c in report.checks]
    if reveal.get("forced"):
        try:
            forced_lines = _forced_checks(reveal, bets, payouts)
        except (KeyError, TypeError, ValueError) as exc:
            forced_lines = [VerifyLine("result", False, f"forced result unreadable: {exc}")]
        replaced = {line.part for line in forced_lines}
        lines = [line for line in lines if line.part not in replaced] + forced_lines
    lines.append(_chain_check(round_obj=round_obj, reveal=reveal))
    return lines


def _chain_check(*, round_obj: Round, reveal: Mapping[str, Any]) -> VerifyLine:
    """Check the revealed previous_commit is the commit of the round before this one."""
    claimed = (reveal.get("params") or {}).get("previous_commit")
    previous = Round.objects.filter(code__lt=round_obj.code).order_by("-code").first()
    if previous is None:
        ok = claimed is None
        return VerifyLine("chain", ok, "ok (first round)" if ok else "previous_commit set but no earlier round")
    ok = claimed == previous.commit
    return VerifyLine("chain", ok, f"ok (follows {previous.code})" if ok else f"previous_commit != {previous.code}")


def settlement_breakdown(*, round_obj: Round) -> dict[str, Any]:
    """Return the money figures of a finished round (fee, breakage, payouts) for people."""
    return {
        "result": round_obj.result,
        "void_reason": round_obj.void_reason or None,
        "total_u": round_obj.total_pool_u,
        "up_pool_u": round_obj.up_pool_u,
        "down_pool_u": round_obj.down_pool_u,
        "fee_u": round_obj.fee_u,
        "breakage_u": round_obj.breakage_u,
        "payouts_total_u": round_obj.payouts_total_u,
        "winners": round_obj.winners,
    }


def oracle_deadline_for(*, round_obj: Round) -> Any:
    """Return the instant after which an unresolved close voids the round."""
    from django.conf import settings

    return round_obj.close_at + timedelta(minutes=settings.ORACLE_DEADLINE_MINUTES)


def price_text(value: Decimal) -> str:
    """Return a price as plain digits (no exponent)."""
    return format(value, "f")


@register_stuck_source("rounds", order=40)
def stuck_rounds(*, now: datetime | None = None) -> list[StuckFinding]:
    """Return rounds still open or locked past their settle time plus STUCK_ROUND_AFTER_MINUTES."""
    now = now or timezone.now()
    limit_s = age_limit_s("STUCK_ROUND_AFTER_MINUTES")
    rows = Round.objects.filter(status__in=Round.UNSETTLED, settle_after__lt=now - timedelta(seconds=limit_s)).order_by(
        "settle_after"
    )
    return [
        StuckFinding(
            kind="round",
            id=r.code,
            state=r.status,
            age_s=int((now - r.settle_after).total_seconds()),
            limit_s=limit_s,
            detail=f"settle_after={r.settle_after.isoformat()} oracle_attempts={r.oracle_attempts}",
        )
        for r in rows
    ]
