"""Writes for rounds: open, bet, lock, settle (set-based SQL), oracle prices and forced results.

Every write locks the round's row (SELECT ... FOR UPDATE) and checks its status in the same
transaction, and changes the status only with a conditional UPDATE, so the beat tick, the management
commands and the admin can run at once: the second caller finds the work done and changes nothing.
Network I/O (oracle sources) happens outside any transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce
from prometheus_client import Histogram

from ledger.models import Journal
from ledger.services import house_account, round_pool_account, transfer, user_account
from ops.audit import actor_label, audit_record
from ops.models import Switch
from ops.switches import switch_is_on
from rounds import clock
from rounds.domain import calendar
from rounds.domain.integrity import (
    RULES_VERSION,
    bet_leaf,
    commit_params,
    format_price,
    merkle_root,
    new_salt,
    round_commit,
)
from rounds.domain.oracle import (
    OracleConfigError,
    OracleError,
    PriceEvidence,
    resolve_close,
)
from rounds.domain.pool import BPS_DENOMINATOR, Result, Side, VoidReason, outcome

from . import errors
from .lock_objects import round_lock_row, settlement_accounts_lock
from .models import Bet, ForceResultRequest, OracleObservation, Round
from .oracle import configured_sources, operator_sources
from .selectors import bet_record, oracle_deadline_for, round_leaves

logger = logging.getLogger(__name__)

SETTLEMENT_DURATION = Histogram(
    "round_settlement_duration_seconds",
    "Time to settle a round (the set-based SQL transaction), seconds.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FORCEABLE = (Result.UP, Result.DOWN, Result.VOID)


def _day(code: str) -> date:
    try:
        return calendar.parse_code(code)
    except calendar.InvalidRoundCode as exc:
        raise errors.InvalidRoundCode(str(exc)) from exc


def _require_perm(actor: Any, perm: str) -> None:
    """Staff users need the permission; a CLI or system actor (a string) runs with shell rights."""
    if hasattr(actor, "has_perm") and not actor.has_perm(perm):
        raise errors.NotAllowed(f"{actor_label(actor)} lacks the permission {perm}.")


def _canonical_price(value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation as exc:
        raise errors.InvalidPrice(f"{value!r} is not a price.") from exc
    if not price.is_finite() or price <= 0:
        raise errors.InvalidPrice(f"{value!r} is not a positive price.")
    return Decimal(format_price(price=price))


# --- Open --------------------------------------------------------------------------------------


def _reference_close(*, instrument: str, previous_day: date) -> tuple[Decimal, str]:
    """Return the previous session's close: its round's settled close, else the oracle's."""
    previous = Round.objects.filter(code=calendar.code_for(previous_day)).first()
    if previous is not None and previous.close_price:
        return Decimal(previous.close_price), f"round {previous.code} close"
    if previous is not None and previous.status in Round.UNSETTLED:
        raise errors.ReferenceUnavailable(
            f"Round {previous.code} is not settled yet; its close is this round's reference."
        )
    try:
        answer = resolve_close(sources=configured_sources(), instrument=instrument, day=previous_day)
    except (OracleError, OracleConfigError) as exc:
        raise errors.ReferenceUnavailable(
            f"The close of {previous_day} is not available from the oracle ({exc}); "
            "pass a verified reference with a reason."
        ) from exc
    return answer.price, "oracle: " + ", ".join(e.source for e in answer.evidence if e.price is not None)


def _require_final_reference(*, code: str, previous_day: date) -> None:
    """Refuse unless the reference session has closed and its settle buffer has passed (oracle or operator)."""
    try:
        final_at = calendar.session_times(day=previous_day).settle_after_utc
    except (calendar.NotATradingDay, calendar.OutsideCalendarRange) as exc:
        raise errors.NotASession(str(exc)) from exc
    if clock.now() < final_at:
        raise errors.ReferenceNotFinal(
            f"Round {code}'s reference is the close of {previous_day}, which is final only at "
            f"{final_at:%Y-%m-%d %H:%M}Z (the session's close plus the settle buffer); open it after that. "
            "Nothing was changed.",
            extra={"code": code, "reference_session": str(previous_day), "final_at": final_at.isoformat()},
        )


def round_open(
    *, code: str, acting_user: Any, reference_close: Decimal | None = None, reason: str = ""
) -> tuple[Round, bool]:
    """Open the round of one XNYS session; return (round, created). Opening twice returns the first.

    The reference close (the previous session's) is taken only once that session has closed plus the settle
    buffer, whether from the oracle or from an operator; before then ReferenceNotFinal (409).
    """
    day = _day(code)
    try:
        times = calendar.session_times(day=day)
    except calendar.NotATradingDay as exc:
        raise errors.NotASession(f"{day} is not an XNYS trading session; no round for {code}.") from exc
    except calendar.OutsideCalendarRange as exc:
        raise errors.NotASession(str(exc)) from exc
    existing = Round.objects.filter(code=code).first()
    if existing is not None:
        return existing, False
    if clock.now() >= times.lock_utc:
        raise errors.RoundTooLate(f"Round {code} would lock at {times.lock_utc:%Y-%m-%d %H:%M:%S}Z; too late to open.")
    instrument, currency = settings.ROUND_INSTRUMENT, settings.ROUND_CURRENCY
    previous_day = calendar.previous_session(day=day)
    _require_final_reference(code=code, previous_day=previous_day)
    if reference_close is not None:
        if not reason.strip():
            raise errors.ReasonRequired("A reference close given by hand needs a reason.")
        reference, reference_source = _canonical_price(reference_close), f"operator: {reason.strip()}"
    else:
        reference, reference_source = _reference_close(instrument=instrument, previous_day=previous_day)
    with transaction.atomic():
        # Serialise openings on the chain: the previous round's commit is read under a lock.
        # (SQLite, the embedded `make run` default, serialises every writer already.)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('rounds:open'))")
        existing = Round.objects.filter(code=code).first()
        if existing is not None:
            return existing, False
        previous = Round.objects.filter(code__lt=code).order_by("-code").first()
        salt = new_salt()
        params = commit_params(
            code=code,
            instrument=instrument,
            reference_close=reference,
            open_utc=times.open_utc,
            lock_utc=times.lock_utc,
            close_utc=times.close_utc,
            settle_after_utc=times.settle_after_utc,
            fee_bps=settings.FEE_BPS,
            min_stake_u=settings.MIN_STAKE_U,
            previous_commit=previous.commit if previous else None,
            salt=salt,
        )
        round_obj = Round.objects.create(
            code=code,
            instrument=instrument,
            currency=currency,
            pool_account=round_pool_account(code=code, currency=currency),
            open_at=times.open_utc,
            lock_at=times.lock_utc,
            close_at=times.close_utc,
            settle_after=times.settle_after_utc,
            fee_bps=settings.FEE_BPS,
            min_stake_u=settings.MIN_STAKE_U,
            reference_close=str(params["reference_close"]),
            reference_session=previous_day,
            rules_version=RULES_VERSION,
            previous_commit=previous.commit if previous else None,
            commit=round_commit(params=params),
            salt=salt,
        )
        audit_record(
            actor=acting_user, action="rounds.open", obj=round_obj, reason=reason, to_state=Round.Status.OPEN,
            data={"code": code, "reference_close": round_obj.reference_close, "reference_source": reference_source,
                  "commit": round_obj.commit},
            system="rounds",
        )
    return round_obj, True


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


# --- Bets --------------------------------------------------------------------------------------


def bet_place(*, user: Any, code: str, side: str, stake_u: int) -> Bet:
    """Move a stake from the player's available balance into the round's pool, before lock."""
    if side not in (Side.UP.value, Side.DOWN.value):
        raise errors.InvalidBet(f"side must be UP or DOWN, not {side!r}.")
    if isinstance(stake_u, bool) or not isinstance(stake_u, int) or stake_u <= 0:
        raise errors.InvalidBet("stake_u must be a positive whole number of micro-units.")
    if switch_is_on(Switch.Name.BETTING_PAUSED):
        raise errors.BettingPaused("Betting is paused by the operators; try again later.")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        now = clock.now()
        if round_obj.status != Round.Status.OPEN or now >= round_obj.lock_at:
            raise errors.RoundLocked(f"Round {code} locked at {round_obj.lock_at:%Y-%m-%d %H:%M:%S}Z; no more bets.")
        if stake_u < round_obj.min_stake_u:
            raise errors.StakeTooSmall(f"The minimum stake is {round_obj.min_stake_u} micro-units.")
        if Bet.objects.filter(round=round_obj, player=user).exists():
            raise errors.AlreadyBet(f"You already have a bet in round {code}; one bet per player per round.")
        account = user_account(user=user, currency=round_obj.currency)
        bet = Bet(round=round_obj, player=user, account=account, side=side, stake_u=stake_u, placed_at=now)
        bet.leaf = bet_leaf(**bet_record(bet=bet))  # type: ignore[arg-type]
        bet.save(force_insert=True)
        transfer(
            source=account,
            destination=round_obj.pool_account,
            amount_u=stake_u,
            type="bet",
            reference=f"bet:{bet.bet_id}",
            actor=user,
            metadata={"round": code, "side": side, "bet_id": str(bet.bet_id)},
        )
        pool, count = ("up_pool_u", "up_bets") if side == Side.UP else ("down_pool_u", "down_bets")
        Round.objects.filter(pk=round_obj.pk).update(**{pool: F(pool) + stake_u, count: F(count) + 1})
    return bet


# --- Lock --------------------------------------------------------------------------------------


def round_lock(*, code: str, acting_user: Any, reason: str = "") -> tuple[Round, bool]:
    """Stop taking bets and publish the Merkle root of the accepted bets; return (round, changed)."""
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        if round_obj.status != Round.Status.OPEN:
            return round_obj, False
        root = merkle_root(round_leaves(round_obj=round_obj))
        now = clock.now()
        updated = Round.objects.filter(pk=round_obj.pk, status=Round.Status.OPEN).update(
            status=Round.Status.LOCKED, merkle_root=root, locked_at=now
        )
        assert updated == 1
        audit_record(
            actor=acting_user, action="rounds.lock", obj=round_obj, reason=reason,
            from_state=Round.Status.OPEN, to_state=Round.Status.LOCKED,
            data={"merkle_root": root, "early": now < round_obj.lock_at}, system="rounds",
        )
    round_obj.refresh_from_db()
    return round_obj, True


# --- Settlement --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breakdown:
    """The money of one settlement: what moved, or (dry run) what would."""

    code: str
    result: Result
    void_reason: VoidReason | None
    up_pool_u: int
    down_pool_u: int
    total_u: int
    fee_u: int
    net_u: int
    payouts_total_u: int
    breakage_u: int
    winners: int


def _effective(*, result: Result, void_reason: VoidReason | None, up_u: int, down_u: int) -> tuple[Result, VoidReason | None]:
    """Apply the pool-composition rules first (empty, one-sided), as `settle_pool` does."""
    if up_u == 0 and down_u == 0:
        return Result.VOID, VoidReason.EMPTY
    if up_u == 0 or down_u == 0:
        return Result.VOID, VoidReason.ONE_SIDED
    if result is Result.VOID:
        return Result.VOID, void_reason or VoidReason.TIE
    return result, None


BIGINT_MAX = 2**63 - 1


def _payout_sql(*, win_u: int, net: int) -> str:
    """Return the SQL for stake_u * net // W (placeholders: net, W), exact for every stake.

    No stake exceeds the winning pool W, so when W * net fits in a bigint every product does and
    bigint division (truncating, so flooring for these positive values) is exact; otherwise the
    product is computed in numeric and `div` takes its integer quotient.
    """
    if win_u * net <= BIGINT_MAX:
        return "(stake_u * %s::bigint) / %s::bigint"
    return "div(stake_u::numeric * %s::numeric, %s::numeric)::bigint"


def _pool_figures(*, round_id: int) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(stake_u) FILTER (WHERE side = 'UP'), 0),"
            " COALESCE(SUM(stake_u) FILTER (WHERE side = 'DOWN'), 0) FROM rounds_bet WHERE round_id = %s",
            [round_id],
        )
        up_u, down_u = cursor.fetchone()
    return int(up_u), int(down_u)


def _fee_and_net(*, result: Result, fee_bps: int, up_u: int, down_u: int) -> tuple[int, int, int]:
    """Return (fee, net, winning pool) in integers (DESIGN.md §7)."""
    total = up_u + down_u
    if result is Result.VOID:
        return 0, total, 0
    win_u, lose_u = (up_u, down_u) if result is Result.UP else (down_u, up_u)
    fee = min(total * fee_bps // BPS_DENOMINATOR, lose_u)
    return fee, total - fee, win_u


def settlement_preview(*, code: str, result: Result, void_reason: VoidReason | None = None) -> Breakdown:
    """Compute the breakdown a settlement would post, without moving anything (the dry run)."""
    from .selectors import round_get

    round_obj = round_get(code=code)
    up_u, down_u = _pool_figures(round_id=round_obj.pk)
    effective, reason = _effective(result=result, void_reason=void_reason, up_u=up_u, down_u=down_u)
    fee, net, win_u = _fee_and_net(result=effective, fee_bps=round_obj.fee_bps, up_u=up_u, down_u=down_u)
    bets = Bet.objects.filter(round_id=round_obj.pk)
    if effective is Result.VOID:
        figures = bets.aggregate(paid=Coalesce(Sum("stake_u"), 0), winners=Count("id"))
        paid, winners = int(figures["paid"]), int(figures["winners"])
    elif _set_based():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(div(stake_u::numeric * %s::numeric, %s::numeric)), 0), COUNT(*)"
                " FROM rounds_bet WHERE round_id = %s AND side = %s",
                [net, win_u, round_obj.pk, effective.value],
            )
            total_paid, count = cursor.fetchone()
        paid, winners = int(total_paid), int(count)
    else:
        stakes = list(bets.filter(side=effective.value).values_list("stake_u", flat=True))
        paid, winners = sum(stake * net // win_u for stake in stakes), len(stakes)
    return Breakdown(
        code=code, result=effective, void_reason=reason, up_pool_u=up_u, down_pool_u=down_u, total_u=up_u + down_u,
        fee_u=fee, net_u=net, payouts_total_u=paid, breakage_u=net - paid, winners=winners,
    )


def settlement_preview_auto(*, code: str) -> tuple[Breakdown, Decimal | None]:
    """Ask the oracle now (recording nothing) and preview the AUTO settlement; raise OraclePending if no price."""
    from .selectors import round_get

    round_obj = round_get(code=code)
    if round_obj.up_pool_u == 0 or round_obj.down_pool_u == 0:
        return settlement_preview(code=code, result=Result.VOID), None
    try:
        answer = resolve_close(
            sources=_oracle_sources(round_obj=round_obj), instrument=round_obj.instrument,
            day=calendar.parse_code(code), clock=clock.now,
        )
    except (OracleError, OracleConfigError) as exc:
        raise errors.OraclePending(f"Round {code}: {exc}.") from exc
    result = outcome(reference=Decimal(round_obj.reference_close), close=answer.price)
    reason = VoidReason.TIE if result is Result.VOID else None
    return settlement_preview(code=code, result=result, void_reason=reason), answer.price


def _reveal_header(
    *, round_obj: Round, close: Decimal | None, evidence: list[dict[str, Any]], result: Result,
    void_reason: VoidReason | None, fee_u: int, breakage_u: int, forced: dict[str, Any] | None,
) -> dict[str, Any]:
    """Return the public reveal (as `build_reveal`), without the payouts: those live on the bets."""
    params = round_params(round_obj=round_obj)
    reveal: dict[str, Any] = {
        "params": {key: value for key, value in params.items() if key != "salt"},
        "salt": params["salt"],
        "close": None if close is None else format_price(price=close),
        "evidence": evidence,
        "result": result.value,
        "void_reason": None if void_reason is None else void_reason.value,
        "fee_u": fee_u,
        "breakage_u": breakage_u,
    }
    if forced:
        reveal["forced"] = forced
    return reveal


def _settle(
    *, round_id: int, result: Result, void_reason: VoidReason | None, close: Decimal | None,
    evidence: list[dict[str, Any]], forced: dict[str, Any] | None, acting_user: Any, reason: str = "",
) -> tuple[Round, bool]:
    """Settle a LOCKED round in one transaction with a handful of set-based statements."""
    started = time.monotonic()
    with transaction.atomic():
        round_obj = Round.objects.select_for_update().get(pk=round_id)
        if round_obj.status != Round.Status.LOCKED:
            return round_obj, False
        up_u, down_u = _pool_figures(round_id=round_id)
        total = up_u + down_u
        effective, reason_code = _effective(result=result, void_reason=void_reason, up_u=up_u, down_u=down_u)
        fee, net, win_u = _fee_and_net(result=effective, fee_bps=round_obj.fee_bps, up_u=up_u, down_u=down_u)
        house = house_account(currency=round_obj.currency)
        settle_money = _settle_money_set_based if _set_based() else _settle_money_portable
        paid, winners, breakage = settle_money(
            round_obj=round_obj, effective=effective, reason_code=reason_code, fee=fee, net=net, win_u=win_u,
            total=total, house_id=house.pk, acting_user=acting_user,
        )
        status = Round.Status.VOID if effective is Result.VOID else Round.Status.SETTLED
        now = clock.now()
        duration = time.monotonic() - started
        reveal = _reveal_header(
            round_obj=round_obj, close=close, evidence=evidence, result=effective, void_reason=reason_code,
            fee_u=fee, breakage_u=breakage, forced=forced,
        )
        updated = Round.objects.filter(pk=round_id, status=Round.Status.LOCKED).update(
            status=status, result=effective.value, void_reason=reason_code.value if reason_code else "",
            close_price=format_price(price=close) if close is not None else "", price_evidence=evidence,
            forced=forced, fee_u=fee, breakage_u=breakage, payouts_total_u=paid, winners=winners,
            reveal=reveal, settled_at=now, settlement_duration_s=duration,
        )
        assert updated == 1
        audit_record(
            actor=acting_user, action="rounds.settle", obj=round_obj, reason=reason,
            from_state=Round.Status.LOCKED, to_state=status,
            data={"result": effective.value, "void_reason": reason_code.value if reason_code else None,
                  "total_u": total, "fee_u": fee, "breakage_u": breakage, "payouts_total_u": paid,
                  "forced": forced},
            system="rounds",
        )
    SETTLEMENT_DURATION.observe(time.monotonic() - started)
    round_obj.refresh_from_db()
    return round_obj, True


SET_BASED_SETTLEMENT = True  # on PostgreSQL; tests also run the portable path and compare


def _set_based() -> bool:
    return SET_BASED_SETTLEMENT and connection.vendor == "postgresql"


def _check_pool(*, round_obj: Round, total: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT balance_u FROM ledger_account WHERE id = %s", [round_obj.pool_account_id])
        (pool_balance,) = cursor.fetchone()
    if pool_balance != total:
        raise errors.SettlementMismatch(
            f"Pool {round_obj.code} holds {pool_balance} but its bets stake {total}; nothing moved."
        )


def _check_conservation(*, round_obj: Round, effective: Result, paid: int, fee: int, breakage: int,
                        total: int, short: int) -> None:
    if paid + fee + breakage != total or breakage < 0 or short or (effective is Result.VOID and breakage):
        raise errors.SettlementMismatch(
            f"Round {round_obj.code}: paid {paid} + fee {fee} + breakage {breakage} != total {total}."
        )


def _settlement_journal_fields(*, round_obj: Round, effective: Result, reason_code: VoidReason | None, total: int,
                               fee: int, breakage: int, paid: int, winners: int) -> dict[str, Any]:
    return {
        "type": "settlement",
        "reference": f"round:{round_obj.code}:settlement",
        "metadata": {
            "round": round_obj.code, "result": effective.value,
            "void_reason": reason_code.value if reason_code else None, "total_u": total, "fee_u": fee,
            "breakage_u": breakage, "payouts_total_u": paid, "winners": winners,
        },
    }


def _settle_money_portable(
    *, round_obj: Round, effective: Result, reason_code: VoidReason | None, fee: int, net: int, win_u: int,
    total: int, house_id: int, acting_user: Any,
) -> tuple[int, int, int]:
    """Settle with the reference pool math and one ledger posting (any database; the embedded default).

    Loads the round's bets into Python, so it is for small rounds; PostgreSQL uses the set-based path.
    """
    from ledger.models import Account
    from ledger.services import Leg, journal_post
    from rounds.domain.pool import settle_pool

    _check_pool(round_obj=round_obj, total=total)
    bets = list(Bet.objects.filter(round_id=round_obj.pk).order_by("pk"))
    settlement = settle_pool(
        stakes=[(bet.pk, Side(bet.side), bet.stake_u) for bet in bets],
        result=effective, fee_bps=round_obj.fee_bps, void_reason=reason_code,
    )
    for bet in bets:
        bet.payout_u = settlement.payouts_u[bet.pk]
    Bet.objects.bulk_update(bets, ["payout_u"])
    paid = sum(bet.payout_u for bet in bets)
    winners = sum(1 for bet in bets if bet.payout_u > 0)
    short = sum(1 for bet in bets if 0 < bet.payout_u < bet.stake_u)
    breakage = net - paid
    _check_conservation(round_obj=round_obj, effective=effective, paid=paid, fee=fee, breakage=breakage,
                        total=total, short=short)
    if total:
        accounts = Account.objects.in_bulk([round_obj.pool_account_id, house_id, *(b.account_id for b in bets)])
        legs = [Leg(accounts[round_obj.pool_account_id], -total)]
        legs += [Leg(accounts[b.account_id], b.payout_u) for b in bets if b.payout_u > 0]
        legs += [Leg(accounts[house_id], amount) for amount in (fee, breakage) if amount > 0]
        fields = _settlement_journal_fields(round_obj=round_obj, effective=effective, reason_code=reason_code,
                                            total=total, fee=fee, breakage=breakage, paid=paid, winners=winners)
        journal_post(legs=legs, actor=acting_user, system="rounds", **fields)
    return paid, winners, breakage


def _settle_money_set_based(
    *, round_obj: Round, effective: Result, reason_code: VoidReason | None, fee: int, net: int, win_u: int,
    total: int, house_id: int, acting_user: Any,
) -> tuple[int, int, int]:
    """Settle with a handful of set-based statements: payouts, one journal, its entries, the balances."""
    round_id = round_obj.pk
    paid_sides = [Side.UP.value, Side.DOWN.value] if effective is Result.VOID else [effective.value]
    with connection.cursor() as cursor:
        # Once a day, for this transaction only: sort and aggregate a million rows in memory.
        cursor.execute("SET LOCAL work_mem = '256MB'")
    settlement_accounts_lock(round_id=round_id, sides=paid_sides, extra_account_ids=[round_obj.pool_account_id, house_id])
    _check_pool(round_obj=round_obj, total=total)
    with connection.cursor() as cursor:
        if effective is Result.VOID:
            cursor.execute("UPDATE rounds_bet SET payout_u = stake_u WHERE round_id = %s", [round_id])
        else:
            cursor.execute(
                f"UPDATE rounds_bet SET payout_u = CASE WHEN side = %s THEN {_payout_sql(win_u=win_u, net=net)}"
                " ELSE 0 END WHERE round_id = %s",
                [effective.value, net, win_u, round_id],
            )
        cursor.execute(
            "SELECT COALESCE(SUM(payout_u), 0), COUNT(*) FILTER (WHERE payout_u > 0),"
            " COUNT(*) FILTER (WHERE payout_u > 0 AND payout_u < stake_u)"
            " FROM rounds_bet WHERE round_id = %s",
            [round_id],
        )
        paid, winners, short = (int(v) for v in cursor.fetchone())
        breakage = net - paid
        _check_conservation(round_obj=round_obj, effective=effective, paid=paid, fee=fee, breakage=breakage,
                            total=total, short=short)
        if not total:
            return paid, winners, breakage
        fields = _settlement_journal_fields(round_obj=round_obj, effective=effective, reason_code=reason_code,
                                            total=total, fee=fee, breakage=breakage, paid=paid, winners=winners)
        journal = Journal.objects.create(
            **fields,
            fingerprint=hashlib.sha256(
                f"settlement|{round_obj.code}|{effective}|{total}|{fee}|{breakage}|{paid}".encode()
            ).hexdigest(),
            actor=acting_user if getattr(acting_user, "pk", None) is not None else None,
            actor_label=actor_label(acting_user, "rounds"),
        )
        house_legs = [(house_id, fee), (house_id, breakage)]  # two separate house entries
        cursor.execute(
            "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u)"
            " SELECT %s, account_id, %s, payout_u FROM rounds_bet WHERE round_id = %s AND payout_u > 0"
            " UNION ALL SELECT %s, %s, %s, %s"
            " UNION ALL SELECT %s, h.account_id, %s, h.amount_u"
            " FROM unnest(%s::bigint[], %s::bigint[]) AS h(account_id, amount_u) WHERE h.amount_u > 0",
            [
                journal.pk, round_obj.currency, round_id,
                journal.pk, round_obj.pool_account_id, round_obj.currency, -total,
                journal.pk, round_obj.currency,
                [a for a, _ in house_legs], [v for _, v in house_legs],
            ],
        )
        cursor.execute(
            "UPDATE ledger_account a SET balance_u = a.balance_u + d.delta"
            " FROM (SELECT account_id, SUM(amount_u) AS delta FROM ledger_entry"
            "       WHERE journal_id = %s GROUP BY account_id) d"
            " WHERE a.id = d.account_id",
            [journal.pk],
        )
        cursor.execute("SELECT balance_u FROM ledger_account WHERE id = %s", [round_obj.pool_account_id])
        (after,) = cursor.fetchone()
        if after != 0:
            raise errors.SettlementMismatch(f"Pool {round_obj.code} would hold {after} after settlement.")
    return paid, winners, breakage


def _record_observations(*, round_obj: Round, evidence: tuple[PriceEvidence, ...]) -> None:
    OracleObservation.objects.bulk_create(
        OracleObservation(
            round=round_obj, kind=OracleObservation.Kind.FETCHED, source=e.source,
            price=format_price(price=e.price) if e.price is not None else "", error=e.error or "", url=e.url,
            fetched_at=e.fetched_at,
        )
        for e in evidence
        if not e.source.startswith("operator:")
    )


def _oracle_sources(*, round_obj: Round) -> list[Any]:
    return [*configured_sources(), *operator_sources(round_obj=round_obj)]


def round_settle(
    *, code: str, result: str, acting_user: Any, reason: str = "", evidence: str = "", approved_by: Any = None,
) -> tuple[Round, bool]:
    """Settle a round: AUTO from the oracle (after close + 5 min), or a forced UP/DOWN/VOID from LOCKED.

    Returns (round, changed); a finished round is returned unchanged, so running it twice is safe.
    AUTO without an agreed price raises OraclePending until the deadline, then voids (ORACLE_FAILURE).
    """
    from .selectors import round_get

    wanted = (result or "").strip().upper()
    if wanted not in ("AUTO", "UP", "DOWN", "VOID"):
        raise errors.InvalidBet(f"result must be AUTO, UP, DOWN or VOID, not {result!r}.")
    round_obj = round_get(code=code)
    if round_obj.is_finished:
        return round_obj, False
    if wanted != "AUTO":
        forced_result = Result(wanted)
        if not reason.strip():
            raise errors.ReasonRequired("A forced result needs a reason.")
        _require_perm(acting_user, "rounds.force_round_result")
        if round_obj.status != Round.Status.LOCKED:
            raise errors.RoundNotLocked(f"Round {code} is {round_obj.status}; a result is forced only from LOCKED.")
        forced = {
            "result": forced_result.value, "operator": actor_label(acting_user, "cli"),
            "approved_by": actor_label(approved_by) if approved_by is not None else None,
            "reason": reason.strip(), "evidence": evidence.strip(),
        }
        return _settle(
            round_id=round_obj.pk, result=forced_result,
            void_reason=VoidReason.CANCELLED if forced_result is Result.VOID else None,
            close=None, evidence=[], forced=forced, acting_user=acting_user, reason=reason,
        )
    if round_obj.status != Round.Status.LOCKED:
        raise errors.RoundNotLocked(f"Round {code} is {round_obj.status}; lock it before settling.")
    now = clock.now()
    if now < round_obj.settle_after:
        raise errors.SettleTooEarly(f"Round {code} settles from {round_obj.settle_after:%Y-%m-%d %H:%M:%S}Z.")
    if round_obj.up_pool_u == 0 or round_obj.down_pool_u == 0:
        # Void by pool composition (empty or one-sided): no price needed.
        return _settle(round_id=round_obj.pk, result=Result.VOID, void_reason=None, close=None, evidence=[],
                       forced=None, acting_user=acting_user)
    try:
        answer = resolve_close(
            sources=_oracle_sources(round_obj=round_obj), instrument=round_obj.instrument,
            day=calendar.parse_code(code), clock=clock.now,
        )
    except (OracleError, OracleConfigError) as exc:
        gathered = getattr(exc, "evidence", ())
        _record_observations(round_obj=round_obj, evidence=gathered)
        Round.objects.filter(pk=round_obj.pk).update(oracle_attempts=F("oracle_attempts") + 1,
                                                      oracle_last_error=str(exc)[:2000])
        if clock.now() < oracle_deadline_for(round_obj=round_obj):
            raise errors.OraclePending(f"Round {code}: {exc}. Retried until the deadline.") from exc
        return _settle(
            round_id=round_obj.pk, result=Result.VOID, void_reason=VoidReason.ORACLE_FAILURE, close=None,
            evidence=[e.as_dict() for e in gathered], forced=None, acting_user=acting_user,
            reason=f"oracle failure: {exc}",
        )
    _record_observations(round_obj=round_obj, evidence=answer.evidence)
    price_result = outcome(reference=Decimal(round_obj.reference_close), close=answer.price)
    return _settle(
        round_id=round_obj.pk, result=price_result,
        void_reason=VoidReason.TIE if price_result is Result.VOID else None, close=answer.price,
        evidence=[e.as_dict() for e in answer.evidence], forced=None, acting_user=acting_user,
    )


# --- Oracle prices entered by operators ----------------------------------------------------------


def oracle_price_enter(*, code: str, price: Any, evidence: str, acting_user: Any) -> OracleObservation:
    """Record an operator's official close for a round, with evidence; it counts as one source."""
    _require_perm(acting_user, "rounds.enter_oracle_price")
    value = _canonical_price(price)
    if not evidence.strip():
        raise errors.ReasonRequired("An entered price needs evidence (where it was read).")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        if round_obj.is_finished:
            raise errors.RoundLocked(f"Round {code} is {round_obj.status}; a price now changes nothing.")
        if clock.now() < round_obj.close_at:
            raise errors.SettleTooEarly(f"Round {code} closes at {round_obj.close_at:%Y-%m-%d %H:%M:%S}Z; "
                                        "its closing price cannot be known yet.")
        source = f"operator:{actor_label(acting_user)}"
        try:
            with transaction.atomic():
                observation = OracleObservation.objects.create(
                    round=round_obj, kind=OracleObservation.Kind.OPERATOR, source=source,
                    price=format_price(price=value), evidence=evidence.strip(),
                    entered_by=acting_user if getattr(acting_user, "pk", None) else None, fetched_at=clock.now(),
                )
        except IntegrityError as exc:
            raise errors.PriceAlreadyEntered(f"{source} already entered a price for round {code}.") from exc
        audit_record(
            actor=acting_user, action="rounds.enter_oracle_price", obj=round_obj, reason=evidence.strip(),
            data={"price": observation.price, "source": source}, system="rounds",
        )
    return observation


# --- Forced results with four eyes ---------------------------------------------------------------


def force_result_propose(*, code: str, result: str, reason: str, evidence: str, acting_user: Any) -> ForceResultRequest:
    """Operator A proposes forcing UP, DOWN or VOID on a LOCKED round; operator B must approve."""
    _require_perm(acting_user, "rounds.force_round_result")
    if result not in [r.value for r in FORCEABLE]:
        raise errors.InvalidBet(f"result must be UP, DOWN or VOID, not {result!r}.")
    if not reason.strip() or not evidence.strip():
        raise errors.ReasonRequired("A forced result needs a reason and evidence.")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        if round_obj.status != Round.Status.LOCKED:
            raise errors.RoundNotLocked(f"Round {code} is {round_obj.status}; a result is forced only from LOCKED.")
        try:
            with transaction.atomic():
                request = ForceResultRequest.objects.create(
                    round=round_obj, result=result, reason=reason.strip(), evidence=evidence.strip(),
                    proposed_by=acting_user,
                )
        except IntegrityError as exc:
            raise errors.ForceRequestNotPending(f"Round {code} already has a pending force-result request.") from exc
        audit_record(
            actor=acting_user, action="rounds.force_result.propose", obj=request, reason=reason,
            data={"round": code, "result": result, "evidence": evidence.strip()}, system="rounds",
        )
    return request


def force_result_approve(*, request_id: int, acting_user: Any) -> Round:
    """Operator B (not A) approves a pending request; the round is settled with the forced result."""
    _require_perm(acting_user, "rounds.force_round_result")
    with transaction.atomic():
        request = ForceResultRequest.objects.select_for_update().select_related("round").get(pk=request_id)
        if request.state != ForceResultRequest.State.PENDING:
            raise errors.ForceRequestNotPending(f"Request {request_id} is already {request.state}.")
        if request.proposed_by_id == getattr(acting_user, "pk", None):
            raise errors.FourEyesRequired("The operator who proposed a forced result cannot approve it.")
        ForceResultRequest.objects.filter(pk=request.pk, state=ForceResultRequest.State.PENDING).update(
            state=ForceResultRequest.State.APPROVED, decided_by=acting_user, decided_at=clock.now()
        )
        audit_record(
            actor=acting_user, action="rounds.force_result.approve", obj=request, reason=request.reason,
            data={"round": request.round.code, "result": request.result,
                  "proposed_by": actor_label(request.proposed_by)},
            system="rounds",
        )
        round_obj, _ = round_settle(
            code=request.round.code, result=request.result, acting_user=request.proposed_by,
            reason=request.reason, evidence=request.evidence, approved_by=acting_user,
        )
        if round_obj.status not in Round.FINISHED:
            raise errors.RoundNotLocked(f"Round {round_obj.code} could not be settled.")
    return round_obj


def force_result_reject(*, request_id: int, acting_user: Any, reason: str) -> ForceResultRequest:
    """A second operator rejects a pending request; nothing moves."""
    _require_perm(acting_user, "rounds.force_round_result")
    if not reason.strip():
        raise errors.ReasonRequired("A rejection needs a reason.")
    with transaction.atomic():
        request = ForceResultRequest.objects.select_for_update().get(pk=request_id)
        if request.state != ForceResultRequest.State.PENDING:
            raise errors.ForceRequestNotPending(f"Request {request_id} is already {request.state}.")
        ForceResultRequest.objects.filter(pk=request.pk).update(
            state=ForceResultRequest.State.REJECTED, decided_by=acting_user, decided_at=clock.now()
        )
        audit_record(actor=acting_user, action="rounds.force_result.reject", obj=request, reason=reason,
                     system="rounds")
    request.refresh_from_db()
    return request


# --- The clock ----------------------------------------------------------------------------------


def _upcoming_code(*, now: datetime) -> str | None:
    """Return the code of the first session whose lock is still ahead."""
    try:
        day = calendar.next_session(on_or_after=now.date() - timedelta(days=1))
        while calendar.session_times(day=day).lock_utc <= now:
            day = calendar.next_session(on_or_after=day + timedelta(days=1))
    except calendar.OutsideCalendarRange:
        return None
    return calendar.code_for(day)


def rounds_tick() -> dict[str, Any]:
    """Lock what is due, settle (AUTO) what is due, then open the next session's round if none is open."""
    now = clock.now()
    report: dict[str, Any] = {"opened": [], "locked": [], "settled": [], "pending": [], "errors": []}
    for code in Round.objects.filter(status=Round.Status.OPEN, lock_at__lte=now).values_list("code", flat=True):
        _, changed = round_lock(code=code, acting_user=None)
        if changed:
            report["locked"].append(code)
    for code in Round.objects.filter(status=Round.Status.LOCKED, settle_after__lte=now).values_list("code", flat=True):
        try:
            round_obj, changed = round_settle(code=code, result="AUTO", acting_user=None)
        except errors.OraclePending as exc:
            report["pending"].append(exc.detail)
            continue
        except errors.RoundError as exc:
            report["errors"].append(f"{code}: {exc.detail}")
            continue
        if changed:
            report["settled"].append(f"{code}:{round_obj.result}")
    # Open last: the next round's reference is the round just settled (once its session's close is final).
    if not Round.objects.filter(status=Round.Status.OPEN, lock_at__gt=now).exists():
        code = _upcoming_code(now=now)
        if code and not Round.objects.filter(code=code).exists():
            try:
                round_open(code=code, acting_user=None)
                report["opened"].append(code)
            except errors.RoundError as exc:
                report["pending"].append(f"open {code}: {exc.detail}")
    return report


__all__ = [
    "Breakdown",
    "bet_place",
    "force_result_approve",
    "force_result_propose",
    "force_result_reject",
    "oracle_price_enter",
    "round_lock",
    "round_open",
    "round_params",
    "round_settle",
    "rounds_tick",
    "settlement_preview",
    "settlement_preview_auto",
]
