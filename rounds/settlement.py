"""Settlement of a round: the set-based engine, its dry run, and AUTO settlement from the oracle.

The pool maths are `rounds.domain.pool`'s (effective result, capped fee, conservation); the payouts
are one UPDATE over the round's bets, computing the integers `settle_pool` does (the tests compare both). Money
moves only through the ledger's door for rows: the winners' payouts staged with one INSERT ... SELECT here,
then `ledger.services.journal_post_staged`, one settlement journal per round. The reveal is
`rounds.domain.reveal.reveal_header`. Forced results and the emergency stop (`rounds.overrides`) settle
through `settlement_apply` too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from ledger.models import Account
from ledger.selectors import account_balance
from ledger.services import POSTING_LEG_TABLE, Leg, house_account, journal_post_staged, posting_legs_stage
from ops.actors import Actor, require_actor
from ops.approvals import decisions_cancel
from ops.audit import audit_record
from ops.tracing import flow_id_new, flow_span
from rounds import clock
from rounds.domain import calendar
from rounds.domain.commitment import format_price
from rounds.domain.oracle import OracleConfigError, OracleError, PriceEvidence, resolve_close
from rounds.domain.pool import (
    ConservationViolation,
    Result,
    VoidReason,
    check_conservation,
    effective_result,
    fee_and_net,
    outcome,
)
from rounds.domain.reveal import reveal_header

from . import errors
from .models import Bet, OracleObservation, Round
from .oracle import configured_sources, operator_sources
from .pools import pools_live
from .selectors import oracle_deadline_for, round_get, round_params

logger = logging.getLogger(__name__)

SETTLEMENT_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""The buckets of `round_settlement_duration_seconds` (`rounds.metrics`): the settlement transaction, seconds."""


def force_subject(code: str) -> str:
    """The maker-checker subject of a round's forced result (proposed in `rounds.overrides`)."""
    return f"rounds.round:{code}"


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


def settlement_preview(*, code: str, result: Result, void_reason: VoidReason | None = None) -> Breakdown:
    """Compute the breakdown a settlement would post, without moving anything (the dry run)."""
    round_obj = round_get(code=code)
    up_u, down_u = _pool_figures(round_id=round_obj.pk)
    effective, reason = effective_result(result=result, void_reason=void_reason, up_u=up_u, down_u=down_u)
    fee, net, win_u = fee_and_net(result=effective, fee_bps=round_obj.fee_bps, up_u=up_u, down_u=down_u)
    bets = Bet.objects.filter(round_id=round_obj.pk)
    if effective is Result.VOID:
        figures = bets.aggregate(paid=Coalesce(Sum("stake_u"), 0), winners=Count("id"))
        paid, winners = int(figures["paid"]), int(figures["winners"])
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(div(stake_u::numeric * %s::numeric, %s::numeric)), 0), COUNT(*)"
                " FROM rounds_bet WHERE round_id = %s AND side = %s",
                [net, win_u, round_obj.pk, effective.value],
            )
            total_paid, count = cursor.fetchone()
        paid, winners = int(total_paid), int(count)
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
    round_obj = round_get(code=code)
    pools = pools_live(round_obj=round_obj)  # stored at lock; an OPEN round's so far from its stripes
    if pools["up_pool_u"] == 0 or pools["down_pool_u"] == 0:
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


def settlement_apply(
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
    """Settle a LOCKED round with this result in one transaction of a handful of set-based statements.

    Returns (round, changed): a round no longer LOCKED is returned unchanged. AUTO (`round_settle`), an
    approved forced result and the emergency stop (`rounds.overrides`) all settle through here.
    """
    started = time.monotonic()
    with transaction.atomic():
        round_obj = Round.objects.select_for_update().get(pk=round_id)
        if round_obj.status != Round.Status.LOCKED:
            return round_obj, False
        up_u, down_u = _pool_figures(round_id=round_id)
        total = up_u + down_u
        effective, reason_code = effective_result(result=result, void_reason=void_reason, up_u=up_u, down_u=down_u)
        fee, net, win_u = fee_and_net(result=effective, fee_bps=round_obj.fee_bps, up_u=up_u, down_u=down_u)
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
        reveal = reveal_header(
            params=round_params(round_obj=round_obj),
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
    """Refuse unless the pool is conserved, no winner gets back less than the stake and a VOID keeps nothing."""
    try:
        check_conservation(paid_u=paid, fee_u=fee, breakage_u=breakage, total_u=total)
    except ConservationViolation as exc:
        raise errors.SettlementMismatch(f"Round {round_obj.code}: {exc}.") from exc
    if short or (effective is Result.VOID and breakage):
        raise errors.SettlementMismatch(
            f"Round {round_obj.code}: {short} winners would get back less than their stake, breakage {breakage}."
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


def _compute_payouts(*, round_obj: Round, effective: Result, net: int, win_u: int) -> None:
    """Write each bet's payout on the round's bets in one UPDATE: a million bets never travel to Python.

    The integers are those of `rounds.domain.pool.settle_pool` (the tests compare both).
    """
    # The red line lets a payout be set once, while the round is LOCKED (rounds migration 0011).
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
    _check_pool(round_obj=round_obj, total=total)
    _compute_payouts(round_obj=round_obj, effective=effective, net=net, win_u=win_u)
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
    fields = _settlement_journal_fields(
        round_obj=round_obj,
        effective=effective,
        reason_code=reason_code,
        total=total,
        fee=fee,
        breakage=breakage,
        paid=paid,
        winners=winners,
    )
    # The legs go to the ledger as rows: the pool and the house from here, each winner's payout with one
    # INSERT ... SELECT over the round's bets; then one call posts them (`ledger.services.journal_post_staged`).
    posting_legs_stage(
        reference=fields["reference"],
        legs=[Leg(pool, -total), *(Leg(house, amount) for amount in (fee, breakage) if amount)],  # two house entries
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {POSTING_LEG_TABLE} (posting_reference, account_id, amount_u)"  # noqa: S608
            " SELECT %s, account_id, payout_u FROM rounds_bet WHERE round_id = %s AND payout_u > 0",
            [fields["reference"], round_obj.pk],
        )
    journal_post_staged(currency=round_obj.currency, actor=acting_user, **fields)
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
    Forced results go through `rounds.overrides`: `force_result_propose` (two operators) or `round_void`
    (the emergency stop).
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
        return settlement_apply(
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
        return settlement_apply(
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
    return settlement_apply(
        round_id=round_obj.pk,
        result=price_result,
        void_reason=VoidReason.TIE if price_result is Result.VOID else None,
        close=answer.price,
        evidence=[e.as_dict() for e in answer.evidence],
        forced=None,
        acting_user=acting_user,
    )


__all__ = [
    "SETTLEMENT_DURATION_BUCKETS",
    "Breakdown",
    "force_subject",
    "round_settle",
    "settlement_apply",
    "settlement_flow_id",
    "settlement_preview",
    "settlement_preview_auto",
]
