"""Writes for rounds: open, bet, lock, settle (set-based SQL), oracle prices and forced results.

Every write locks the round's row (SELECT ... FOR UPDATE) and checks its status in the same
transaction, and changes the status only with a conditional UPDATE, so the beat tick, the management
commands and the admin can run at once: the second caller finds the work done and changes nothing.
Network I/O (oracle sources) happens outside any transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from prometheus_client import Histogram

from ledger.selectors import account_balance
from ledger.services import house_account, round_pool_account, transfer, user_account
from ops.actors import BEAT, Actor, SystemActor, actor_label, require_actor, require_operator, require_player
from ops.approvals import DecisionKind, decision_propose, decisions_cancel, register_decision
from ops.audit import audit_record
from ops.db_guard import service_write_allow
from ops.models import Proposal, Switch
from ops.switches import switch_is_on
from ops.tracing import flow_id_new, flow_span
from ops.validation import amount_u_check
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
from .lock_objects import round_lock_row
from .models import Bet, OracleObservation, Round
from .oracle import configured_sources, operator_sources
from .selectors import bet_record, oracle_deadline_for, round_leaves

if TYPE_CHECKING:
    from accounts.models import User

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


def _require_perm(actor: Actor, perm: str) -> None:
    """Operators need the permission; a named system process (beat, a command) runs with shell rights."""
    require_actor(actor)
    if not isinstance(actor, SystemActor):
        require_operator(actor, permission=perm, what=f"do this ({perm})")


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
    *, code: str, acting_user: Actor, reference_close: Decimal | None = None, reason: str = ""
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
            actor=acting_user,
            action="rounds.open",
            obj=round_obj,
            reason=reason,
            to_state=Round.Status.OPEN,
            data={
                "code": code,
                "reference_close": round_obj.reference_close,
                "reference_source": reference_source,
                "commit": round_obj.commit,
            },
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


def bet_place(*, user: User, code: str, side: str, stake_u: int) -> Bet:
    """Move a stake from the player's available balance into the round's pool, before lock."""
    require_player(user)
    if side not in (Side.UP.value, Side.DOWN.value):
        raise errors.InvalidBet(f"side must be UP or DOWN, not {side!r}.")
    amount_u_check(stake_u, error=errors.InvalidBet, field="stake_u")
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


def round_lock(*, code: str, acting_user: Actor, reason: str = "") -> tuple[Round, bool]:
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
            actor=acting_user,
            action="rounds.lock",
            obj=round_obj,
            reason=reason,
            from_state=Round.Status.OPEN,
            to_state=Round.Status.LOCKED,
            data={"merkle_root": root, "early": now < round_obj.lock_at},
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


def _effective(
    *, result: Result, void_reason: VoidReason | None, up_u: int, down_u: int
) -> tuple[Result, VoidReason | None]:
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
    elif _payouts_in_sql():
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
        code=code,
        result=effective,
        void_reason=reason,
        up_pool_u=up_u,
        down_pool_u=down_u,
        total_u=up_u + down_u,
        fee_u=fee,
        net_u=net,
        payouts_total_u=paid,
        breakage_u=net - paid,
        winners=winners,
    )


def settlement_preview_auto(*, code: str) -> tuple[Breakdown, Decimal | None]:
    """Ask the oracle now (recording nothing) and preview the AUTO settlement; raise OraclePending if no price."""
    from .selectors import round_get

    round_obj = round_get(code=code)
    if round_obj.up_pool_u == 0 or round_obj.down_pool_u == 0:
        return settlement_preview(code=code, result=Result.VOID), None
    try:
        answer = resolve_close(
            sources=_oracle_sources(round_obj=round_obj),
            instrument=round_obj.instrument,
            day=calendar.parse_code(code),
            clock=clock.now,
        )
    except (OracleError, OracleConfigError) as exc:
        raise errors.OraclePending(f"Round {code}: {exc}.") from exc
    result = outcome(reference=Decimal(round_obj.reference_close), close=answer.price)
    reason = VoidReason.TIE if result is Result.VOID else None
    return settlement_preview(code=code, result=result, void_reason=reason), answer.price


def _reveal_header(
    *,
    round_obj: Round,
    close: Decimal | None,
    evidence: list[dict[str, Any]],
    result: Result,
    void_reason: VoidReason | None,
    fee_u: int,
    breakage_u: int,
    forced: dict[str, Any] | None,
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
    *,
    round_id: int,
    result: Result,
    void_reason: VoidReason | None,
    close: Decimal | None,
    evidence: list[dict[str, Any]],
    forced: dict[str, Any] | None,
    acting_user: Actor,
    reason: str = "",
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
        paid, winners, breakage = _settle_money(
            round_obj=round_obj,
            effective=effective,
            reason_code=reason_code,
            fee=fee,
            net=net,
            win_u=win_u,
            total=total,
            house_id=house.pk,
            acting_user=acting_user,
        )
        status = Round.Status.VOID if effective is Result.VOID else Round.Status.SETTLED
        now = clock.now()
        duration = time.monotonic() - started
        reveal = _reveal_header(
            round_obj=round_obj,
            close=close,
            evidence=evidence,
            result=effective,
            void_reason=reason_code,
            fee_u=fee,
            breakage_u=breakage,
            forced=forced,
        )
        updated = Round.objects.filter(pk=round_id, status=Round.Status.LOCKED).update(
            status=status,
            result=effective.value,
            void_reason=reason_code.value if reason_code else "",
            close_price=format_price(price=close) if close is not None else "",
            price_evidence=evidence,
            forced=forced,
            fee_u=fee,
            breakage_u=breakage,
            payouts_total_u=paid,
            winners=winners,
            reveal=reveal,
            settled_at=now,
            settlement_duration_s=duration,
        )
        assert updated == 1
        audit_record(
            actor=acting_user,
            action="rounds.settle",
            obj=round_obj,
            reason=reason,
            from_state=Round.Status.LOCKED,
            to_state=status,
            data={
                "result": effective.value,
                "void_reason": reason_code.value if reason_code else None,
                "total_u": total,
                "fee_u": fee,
                "breakage_u": breakage,
                "payouts_total_u": paid,
                "forced": forced,
            },
        )
    SETTLEMENT_DURATION.observe(time.monotonic() - started)
    round_obj.refresh_from_db()
    logger.info(
        "round %s %s (%s): pool %s, fee %s, paid %s to %s winners, breakage %s",
        round_obj.code,
        round_obj.status,
        round_obj.result,
        total,
        fee,
        paid,
        winners,
        breakage,
    )
    return round_obj, True


def _check_pool(*, round_obj: Round, total: int) -> None:
    pool_balance = account_balance(account=round_obj.pool_account)
    if pool_balance != total:
        raise errors.SettlementMismatch(
            f"Pool {round_obj.code} holds {pool_balance} but its bets stake {total}; nothing moved."
        )


def _check_conservation(
    *, round_obj: Round, effective: Result, paid: int, fee: int, breakage: int, total: int, short: int
) -> None:
    if paid + fee + breakage != total or breakage < 0 or short or (effective is Result.VOID and breakage):
        raise errors.SettlementMismatch(
            f"Round {round_obj.code}: paid {paid} + fee {fee} + breakage {breakage} != total {total}."
        )


def _settlement_journal_fields(
    *,
    round_obj: Round,
    effective: Result,
    reason_code: VoidReason | None,
    total: int,
    fee: int,
    breakage: int,
    paid: int,
    winners: int,
) -> dict[str, Any]:
    return {
        "type": "settlement",
        "reference": f"round:{round_obj.code}:settlement",
        "metadata": {
            "round": round_obj.code,
            "result": effective.value,
            "void_reason": reason_code.value if reason_code else None,
            "total_u": total,
            "fee_u": fee,
            "breakage_u": breakage,
            "payouts_total_u": paid,
            "winners": winners,
        },
    }


def _payouts_in_sql() -> bool:
    """Payouts are one UPDATE on PostgreSQL (the tests also run the Python path there and compare)."""
    return connection.vendor == "postgresql"


def _compute_payouts(
    *, round_obj: Round, effective: Result, reason_code: VoidReason | None, net: int, win_u: int
) -> None:
    """Write each bet's payout on the round's bets: one UPDATE on PostgreSQL, the reference math elsewhere.

    On PostgreSQL a million bets never travel to Python; on the embedded SQLite default (small rounds)
    `rounds.domain.pool.settle_pool` computes the same integers (the tests compare both).
    """
    service_write_allow()  # the bets' payouts change here only (red-line trigger)
    if _payouts_in_sql():
        with connection.cursor() as cursor:
            # Once a day, for this transaction only: sort and aggregate a million rows in memory.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            if effective is Result.VOID:
                cursor.execute("UPDATE rounds_bet SET payout_u = stake_u WHERE round_id = %s", [round_obj.pk])
            else:
                cursor.execute(
                    f"UPDATE rounds_bet SET payout_u = CASE WHEN side = %s THEN {_payout_sql(win_u=win_u, net=net)}"
                    " ELSE 0 END WHERE round_id = %s",
                    [effective.value, net, win_u, round_obj.pk],
                )
        return
    from rounds.domain.pool import settle_pool

    bets = list(Bet.objects.filter(round_id=round_obj.pk).order_by("pk"))
    settlement = settle_pool(
        stakes=[(bet.pk, Side(bet.side), bet.stake_u) for bet in bets],
        result=effective,
        fee_bps=round_obj.fee_bps,
        void_reason=reason_code,
    )
    for bet in bets:
        bet.payout_u = settlement.payouts_u[bet.pk]
    Bet.objects.bulk_update(bets, ["payout_u"])


def _settle_money(
    *,
    round_obj: Round,
    effective: Result,
    reason_code: VoidReason | None,
    fee: int,
    net: int,
    win_u: int,
    total: int,
    house_id: int,
    acting_user: Actor,
) -> tuple[int, int, int]:
    """Compute the payouts, check conservation, and post one settlement journal through the ledger's door."""
    from ledger.models import Account
    from ledger.services import Leg, LegQuery, journal_post_bulk

    _check_pool(round_obj=round_obj, total=total)
    _compute_payouts(round_obj=round_obj, effective=effective, reason_code=reason_code, net=net, win_u=win_u)
    figures = Bet.objects.filter(round_id=round_obj.pk).aggregate(
        paid=Coalesce(Sum("payout_u"), 0),
        winners=Count("id", filter=Q(payout_u__gt=0)),
        short=Count("id", filter=Q(payout_u__gt=0, payout_u__lt=F("stake_u"))),
    )
    paid, winners, short = int(figures["paid"]), int(figures["winners"]), int(figures["short"])
    breakage = net - paid
    _check_conservation(
        round_obj=round_obj, effective=effective, paid=paid, fee=fee, breakage=breakage, total=total, short=short
    )
    if not total:
        return paid, winners, breakage
    accounts = Account.objects.in_bulk([round_obj.pool_account_id, house_id])
    pool, house = accounts[round_obj.pool_account_id], accounts[house_id]
    journal_post_bulk(
        legs=[Leg(pool, -total), *(Leg(house, amount) for amount in (fee, breakage) if amount)],  # two house entries
        leg_query=LegQuery(
            "SELECT account_id, payout_u FROM rounds_bet WHERE round_id = %s AND payout_u > 0", [round_obj.pk]
        ),
        currency=round_obj.currency,
        actor=acting_user,
        **_settlement_journal_fields(
            round_obj=round_obj,
            effective=effective,
            reason_code=reason_code,
            total=total,
            fee=fee,
            breakage=breakage,
            paid=paid,
            winners=winners,
        ),
    )
    pool.refresh_from_db(fields=["balance_u"])
    if pool.balance_u != 0:
        raise errors.SettlementMismatch(f"Pool {round_obj.code} would hold {pool.balance_u} after settlement.")
    return paid, winners, breakage


def _record_observations(*, round_obj: Round, evidence: tuple[PriceEvidence, ...]) -> None:
    OracleObservation.objects.bulk_create(
        OracleObservation(
            round=round_obj,
            kind=OracleObservation.Kind.FETCHED,
            source=e.source,
            price=format_price(price=e.price) if e.price is not None else "",
            error=e.error or "",
            url=e.url,
            fetched_at=e.fetched_at,
        )
        for e in evidence
        if not e.source.startswith("operator:")
    )


def _oracle_sources(*, round_obj: Round) -> list[Any]:
    return [*configured_sources(), *operator_sources(round_obj=round_obj)]


def round_settle(*, code: str, acting_user: Actor) -> tuple[Round, bool]:
    """Settle a LOCKED round from the oracle (AUTO), no earlier than close + 5 min.

    Returns (round, changed); a finished round is returned unchanged, so running it twice is safe.
    Without an agreed price it raises OraclePending until the deadline, then voids (ORACLE_FAILURE).
    Forced results go through `force_result_propose` (two operators) or `round_void` (emergency stop).
    """
    settled, changed = _settle_auto(code=code, acting_user=acting_user)
    if changed:
        with transaction.atomic():  # a forced result proposed meanwhile can no longer apply
            decisions_cancel(
                subject=force_subject(code),
                actor=acting_user,
                reason=f"round {code} settled {settled.result} from the oracle",
            )
    return settled, changed


def settlement_flow_id(*, round_id: int) -> str:
    """The round's settlement flow id: born with the first settlement attempt, the same for every retry."""
    Round.objects.filter(pk=round_id, settlement_flow_id__isnull=True).update(settlement_flow_id=flow_id_new("stl"))
    return str(Round.objects.filter(pk=round_id).values_list("settlement_flow_id", flat=True).get())


def _settle_auto(*, code: str, acting_user: Actor) -> tuple[Round, bool]:
    from .selectors import round_get

    require_actor(acting_user)
    round_obj = round_get(code=code)
    if round_obj.is_finished:
        return round_obj, False
    if round_obj.status != Round.Status.LOCKED:
        raise errors.RoundNotLocked(f"Round {code} is {round_obj.status}; lock it before settling.")
    now = clock.now()
    if now < round_obj.settle_after:
        raise errors.SettleTooEarly(f"Round {code} settles from {round_obj.settle_after:%Y-%m-%d %H:%M:%S}Z.")
    flow_id = settlement_flow_id(round_id=round_obj.pk)
    with flow_span("round.settle", flow_id=flow_id, attributes={"round.code": code}):
        return _settle_from_oracle(round_obj=round_obj, code=code, acting_user=acting_user)


def _settle_from_oracle(*, round_obj: Round, code: str, acting_user: Actor) -> tuple[Round, bool]:
    if round_obj.up_pool_u == 0 or round_obj.down_pool_u == 0:
        # Void by pool composition (empty or one-sided): no price needed.
        return _settle(
            round_id=round_obj.pk,
            result=Result.VOID,
            void_reason=None,
            close=None,
            evidence=[],
            forced=None,
            acting_user=acting_user,
        )
    try:
        answer = resolve_close(
            sources=_oracle_sources(round_obj=round_obj),
            instrument=round_obj.instrument,
            day=calendar.parse_code(code),
            clock=clock.now,
        )
    except (OracleError, OracleConfigError) as exc:
        gathered = getattr(exc, "evidence", ())
        _record_observations(round_obj=round_obj, evidence=gathered)
        Round.objects.filter(pk=round_obj.pk).update(
            oracle_attempts=F("oracle_attempts") + 1, oracle_last_error=str(exc)[:2000]
        )
        if clock.now() < oracle_deadline_for(round_obj=round_obj):
            raise errors.OraclePending(f"Round {code}: {exc}. Retried until the deadline.") from exc
        return _settle(
            round_id=round_obj.pk,
            result=Result.VOID,
            void_reason=VoidReason.ORACLE_FAILURE,
            close=None,
            evidence=[e.as_dict() for e in gathered],
            forced=None,
            acting_user=acting_user,
            reason=f"oracle failure: {exc}",
        )
    _record_observations(round_obj=round_obj, evidence=answer.evidence)
    price_result = outcome(reference=Decimal(round_obj.reference_close), close=answer.price)
    return _settle(
        round_id=round_obj.pk,
        result=price_result,
        void_reason=VoidReason.TIE if price_result is Result.VOID else None,
        close=answer.price,
        evidence=[e.as_dict() for e in answer.evidence],
        forced=None,
        acting_user=acting_user,
    )


# --- Oracle prices entered by operators ----------------------------------------------------------


def oracle_price_enter(*, code: str, price: Any, evidence: str, acting_user: Actor) -> OracleObservation:
    """Record an operator's official close for a round, with evidence; it counts as one source."""
    require_operator(acting_user, permission="rounds.enter_oracle_price", what="enter an official close")
    value = _canonical_price(price)
    if not evidence.strip():
        raise errors.ReasonRequired("An entered price needs evidence (where it was read).")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        if round_obj.is_finished:
            raise errors.RoundLocked(f"Round {code} is {round_obj.status}; a price now changes nothing.")
        if clock.now() < round_obj.close_at:
            raise errors.SettleTooEarly(
                f"Round {code} closes at {round_obj.close_at:%Y-%m-%d %H:%M:%S}Z; "
                "its closing price cannot be known yet."
            )
        source = f"operator:{actor_label(acting_user)}"
        try:
            with transaction.atomic():
                observation = OracleObservation.objects.create(
                    round=round_obj,
                    kind=OracleObservation.Kind.OPERATOR,
                    source=source,
                    price=format_price(price=value),
                    evidence=evidence.strip(),
                    entered_by=acting_user if getattr(acting_user, "pk", None) else None,
                    fetched_at=clock.now(),
                )
        except IntegrityError as exc:
            raise errors.PriceAlreadyEntered(f"{source} already entered a price for round {code}.") from exc
        audit_record(
            actor=acting_user,
            action="rounds.enter_oracle_price",
            obj=round_obj,
            reason=evidence.strip(),
            data={"price": observation.price, "source": source},
        )
    return observation


# --- Forced results (maker-checker) and the emergency stop ------------------------------------

FORCE_KIND = "rounds.force_result"
FORCE_PERMISSION = "rounds.force_round_result"


def force_subject(code: str) -> str:
    """The maker-checker subject of a round's forced result."""
    return f"rounds.round:{code}"


def _check_forceable(*, round_obj: Round) -> None:
    """UP or DOWN may be forced only on a LOCKED round whose session has closed."""
    if round_obj.is_finished:
        raise errors.RoundAlreadySettled(
            f"Round {round_obj.code} is already {round_obj.status} ({round_obj.result}); nothing was changed.",
            extra={"status": round_obj.status, "result": round_obj.result},
        )
    if round_obj.status != Round.Status.LOCKED:
        raise errors.RoundNotLocked(
            f"Round {round_obj.code} is {round_obj.status}; a result is forced only from LOCKED."
        )
    if clock.now() < round_obj.close_at:
        raise errors.SettleTooEarly(
            f"Round {round_obj.code} closes at {round_obj.close_at:%Y-%m-%d %H:%M:%S}Z; "
            "its result cannot be forced before the market has closed."
        )


def force_result_propose(*, code: str, result: str, reason: str, evidence: str, acting_user: Actor) -> Proposal:
    """Operator A proposes forcing UP or DOWN on a LOCKED round after the close; operator B must approve.

    VOID is not proposed: it is the one-operator emergency stop, `round_void`.
    """
    require_operator(acting_user, permission=FORCE_PERMISSION, what="force a round's result")
    wanted = (result or "").strip().upper() if isinstance(result, str) else ""
    if wanted not in (Result.UP.value, Result.DOWN.value):
        raise errors.InvalidResult(f"A forced result is UP or DOWN (VOID is the emergency stop), not {result!r}.")
    if not isinstance(evidence, str) or not evidence.strip():
        raise errors.ReasonRequired("A forced result needs evidence (where the official close was read).")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        _check_forceable(round_obj=round_obj)
        bettors = Bet.objects.filter(round=round_obj).values_list("player_id", flat=True)
        return decision_propose(
            kind=FORCE_KIND,
            subject=force_subject(round_obj.code),
            payload={"result": wanted},
            amounts={},
            parties=list(bettors),
            reason=reason,
            evidence=evidence,
            acting_user=acting_user,
        )


def _apply_force(proposal: Proposal, checker: User) -> dict[str, Any]:
    """Settle the round with the proposed result (the approver's transaction)."""
    code = proposal.subject.rsplit(":", 1)[1]
    round_obj = round_lock_row(code=code)
    _check_forceable(round_obj=round_obj)
    forced_result = Result(proposal.payload["result"])
    forced = {
        "result": forced_result.value,
        "operator": proposal.proposed_by.email,
        "approved_by": checker.email,
        "reason": proposal.reason,
        "evidence": proposal.evidence,
        "proposal": proposal.pk,
    }
    flow_id = settlement_flow_id(round_id=round_obj.pk)
    with flow_span("round.settle", flow_id=flow_id, attributes={"round.code": code, "round.forced": True}):
        round_obj, _ = _settle(
            round_id=round_obj.pk,
            result=forced_result,
            void_reason=None,
            close=None,
            evidence=[],
            forced=forced,
            acting_user=checker,
            reason=proposal.reason,
        )
    return {"round": round_obj.code, "status": round_obj.status, "result": round_obj.result}


def register_round_decisions() -> None:
    """Offer forced results to the maker-checker: always two operators, whatever the pool."""
    register_decision(
        DecisionKind(
            name=FORCE_KIND,
            label="force a round's result",
            permission=FORCE_PERMISSION,
            lock=lambda subject: round_lock_row(code=subject.rsplit(":", 1)[1]),
            apply=_apply_force,
            always_two=True,
        )
    )


def round_void(*, code: str, reason: str, acting_user: Actor) -> tuple[Round, bool]:
    """The emergency stop: one operator voids an OPEN or LOCKED round with a reason; every stake goes back.

    Returns (round, changed). Voiding a round already VOID changes nothing; a round settled otherwise
    is refused (corrections after settlement are compensating adjustments).
    """
    require_operator(acting_user, permission=FORCE_PERMISSION, what="void a round")
    if not isinstance(reason, str) or not reason.strip():
        raise errors.ReasonRequired("Voiding a round needs a reason; it goes in the audit log.")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        if round_obj.status == Round.Status.VOID:
            return round_obj, False
        if round_obj.is_finished:
            raise errors.RoundAlreadySettled(
                f"Round {code} is already {round_obj.status} ({round_obj.result}); it cannot be voided now.",
                extra={"status": round_obj.status, "result": round_obj.result},
            )
        if round_obj.status == Round.Status.OPEN:
            round_lock(code=code, acting_user=acting_user, reason=f"emergency stop: {reason.strip()}")
        forced = {
            "result": Result.VOID.value,
            "operator": actor_label(acting_user),
            "approved_by": None,
            "reason": reason.strip(),
            "emergency_stop": True,
        }
        flow_id = settlement_flow_id(round_id=round_obj.pk)
        with flow_span("round.settle", flow_id=flow_id, attributes={"round.code": code, "round.void": True}):
            settled = _settle(
                round_id=round_obj.pk,
                result=Result.VOID,
                void_reason=VoidReason.CANCELLED,
                close=None,
                evidence=[],
                forced=forced,
                acting_user=acting_user,
                reason=reason.strip(),
            )
        decisions_cancel(subject=force_subject(code), actor=acting_user, reason=f"round {code} voided: {reason}")
    logger.warning("round %s voided by %s (emergency stop): %s", code, actor_label(acting_user), reason.strip())
    return settled


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
        _, changed = round_lock(code=code, acting_user=BEAT)
        if changed:
            report["locked"].append(code)
    for code in Round.objects.filter(status=Round.Status.LOCKED, settle_after__lte=now).values_list("code", flat=True):
        try:
            round_obj, changed = round_settle(code=code, acting_user=BEAT)
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
                round_open(code=code, acting_user=BEAT)
                report["opened"].append(code)
            except errors.RoundError as exc:
                report["pending"].append(f"open {code}: {exc.detail}")
    return report


__all__ = [
    "Breakdown",
    "bet_place",
    "force_result_propose",
    "force_subject",
    "register_round_decisions",
    "oracle_price_enter",
    "round_lock",
    "round_open",
    "round_params",
    "round_settle",
    "round_void",
    "rounds_tick",
    "settlement_flow_id",
    "settlement_preview",
    "settlement_preview_auto",
]
