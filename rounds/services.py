"""Writes for rounds: open, lock, operators' approved oracle prices, and the tick that drives them on the XNYS clock.

Every write locks the round exclusively (`rounds.lock_objects.round_lock_row`; bets hold it shared) and
checks its status in the same transaction, and changes the status only with a conditional UPDATE, so the
beat tick, the management commands and the admin can run at once: the second caller finds the work done
and changes nothing.
Network I/O (oracle sources) happens outside any transaction. Bets are `rounds.betting`, settlement
`rounds.settlement`, forced results and the emergency stop `rounds.overrides`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from ops.actors import BEAT, Actor, SystemActor
from ops.approvals import SecondOperatorRequired, decisions_cancel
from ops.audit import audit_record
from rounds import clock
from rounds.domain import calendar
from rounds.domain.commitment import RULES_VERSION, commit_params, format_price, new_salt, round_commit
from rounds.domain.merkle import merkle_root
from rounds.domain.oracle import OracleConfigError, OracleError, resolve_close

from . import errors
from .accounts import round_pool_account
from .lock_objects import round_lock_row
from .models import OracleObservation, Round
from .oracle import configured_sources
from .pools import pools_fold, stripes_create
from .proofs import merkle_tree_store
from .selectors import round_leaves
from .settlement import round_settle

if TYPE_CHECKING:
    from accounts.models import User


def _day(code: str) -> date:
    try:
        return calendar.parse_code(code)
    except calendar.InvalidRoundCode as exc:
        raise errors.InvalidRoundCode(str(exc)) from exc


def canonical_price(value: Any) -> Decimal:
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
        answer = resolve_close(sources=configured_sources(), instrument=instrument, day=previous_day, clock=clock.now)
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


def reference_subject(code: str) -> str:
    """The maker-checker subject of an operator's reference close for a round not open yet."""
    return f"rounds.reference:{code}"


def close_subject(code: str) -> str:
    """The maker-checker subject of an operator's official close for a round."""
    return f"rounds.close:{code}"


def open_lock() -> None:
    """Serialise round openings (the previous round's commit is read under it), and decisions on them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('rounds:open'))")


def _session(code: str) -> Any:
    day = _day(code)
    try:
        return calendar.session_times(day=day)
    except calendar.NotATradingDay as exc:
        raise errors.NotASession(f"{day} is not an XNYS trading session; no round for {code}.") from exc
    except calendar.OutsideCalendarRange as exc:
        raise errors.NotASession(str(exc)) from exc


def round_open_check(*, code: str) -> tuple[Any, date]:
    """Refuse opening `code` now (no session, already open, too late, reference not final); return its times.

    What an operator's reference proposal is checked against when proposed, and again when approved.
    """
    times = _session(code)
    existing = Round.objects.filter(code=code).first()
    if existing is not None:
        raise errors.RoundAlreadyOpen(
            f"Round {code} is already {existing.status} with reference {existing.reference_close}; "
            "its reference cannot change. Nothing was changed.",
            extra={"code": code, "status": existing.status, "reference_close": existing.reference_close},
        )
    if clock.now() >= times.lock_utc:
        raise errors.RoundTooLate(f"Round {code} would lock at {times.lock_utc:%Y-%m-%d %H:%M:%S}Z; too late to open.")
    previous_day = calendar.previous_session(day=_day(code))
    _require_final_reference(code=code, previous_day=previous_day)
    return times, previous_day


def round_open(
    *, code: str, acting_user: Actor, reference_close: Decimal | None = None, reason: str = ""
) -> tuple[Round, bool]:
    """Open the round of one XNYS session; return (round, created). Opening twice returns the first.

    The reference close (the previous session's) is the previous round's settled close or the oracle's, taken
    only once that session has closed plus the settle buffer; before then ReferenceNotFinal (409). A reference
    entered by an operator is a maker-checker decision (`rounds.overrides.reference_propose`): the round then
    opens when a second operator approves it. Opening from the oracle cancels such a pending proposal.

    `reference_close` is kept for code that opens rounds at a fixed price (test fixtures, benches, drills):
    only a system actor may pass it; an operator is refused (SecondOperatorRequired) and told to propose it.
    """
    _session(code)
    existing = Round.objects.filter(code=code).first()
    if existing is not None:
        return existing, False
    if reference_close is not None:
        if not isinstance(acting_user, SystemActor):
            raise SecondOperatorRequired(
                "A reference close entered by an operator takes two operators: propose it "
                "(open_round --reference … --evidence … --reason … --operator you); a different operator's "
                "approval opens the round. Nothing was changed."
            )
        round_obj = round_open_at_reference(
            code=code,
            reference=reference_close,
            source=f"fixed by {acting_user}",
            acting_user=acting_user,
            reason=reason,
        )
        return round_obj, True
    times, previous_day = round_open_check(code=code)
    reference, reference_source = _reference_close(instrument=settings.ROUND_INSTRUMENT, previous_day=previous_day)
    return _round_create(
        code=code,
        times=times,
        previous_day=previous_day,
        reference=reference,
        reference_source=reference_source,
        acting_user=acting_user,
        reason="",
        data={},
    )


def round_open_at_reference(
    *, code: str, reference: Any, source: str, acting_user: Actor, reason: str, data: dict[str, Any] | None = None
) -> Round:
    """Open a round at a given reference close: an approved operator decision's apply (and test fixtures).

    No operator interface calls this directly: an operator's reference is proposed by one operator and applied
    by another (`rounds.overrides`). Refused like `round_open_check`; a round already open is RoundAlreadyOpen.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise errors.ReasonRequired("A reference close given by hand needs a reason.")
    value = canonical_price(reference)
    times, previous_day = round_open_check(code=code)
    round_obj, created = _round_create(
        code=code,
        times=times,
        previous_day=previous_day,
        reference=value,
        reference_source=source,
        acting_user=acting_user,
        reason=reason.strip(),
        data=data or {},
    )
    if not created:
        raise errors.RoundAlreadyOpen(f"Round {code} was opened meanwhile; nothing was changed.")
    return round_obj


def _round_create(
    *,
    code: str,
    times: Any,
    previous_day: date,
    reference: Decimal,
    reference_source: str,
    acting_user: Actor,
    reason: str,
    data: dict[str, Any],
) -> tuple[Round, bool]:
    instrument, currency = settings.ROUND_INSTRUMENT, settings.ROUND_CURRENCY
    with transaction.atomic():
        open_lock()
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
        stripes_create(code=code, currency=currency)
        audit_record(
            actor=acting_user,
            action="rounds.open",
            obj=round_obj,
            reason=reason,
            to_state=Round.Status.OPEN,
            data={
                **data,
                "code": code,
                "reference_close": round_obj.reference_close,
                "reference_source": reference_source,
                "commit": round_obj.commit,
            },
        )
        decisions_cancel(
            subject=reference_subject(code), actor=acting_user, reason=f"round {code} opened ({reference_source})"
        )
    return round_obj, True


# --- Lock --------------------------------------------------------------------------------------


def round_lock(*, code: str, acting_user: Actor, reason: str = "") -> tuple[Round, bool]:
    """Stop taking bets and publish the Merkle root of the accepted bets; return (round, changed).

    The round's exclusive lock waits for the bets in flight and holds new ones until this commits (they
    then read LOCKED); the pool stripes are folded into the pool account and the pool figures stored.
    """
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        if round_obj.status != Round.Status.OPEN:
            return round_obj, False
        pools = pools_fold(round_obj=round_obj, acting_user=acting_user)  # the stripes into the pool account
        leaves = round_leaves(round_obj=round_obj)
        root = merkle_root(leaves)
        merkle_tree_store(round_obj=round_obj, leaves=leaves, root=root)
        now = clock.now()
        updated = Round.objects.filter(pk=round_obj.pk, status=Round.Status.OPEN).update(
            status=Round.Status.LOCKED, merkle_root=root, locked_at=now, **pools
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


# --- Oracle prices entered by operators ----------------------------------------------------------


def operator_price_check(*, round_obj: Round, source: str) -> None:
    """Refuse an operator's close for a finished round, before the market's close, or a second one per source."""
    if round_obj.is_finished:
        raise errors.RoundAlreadySettled(
            f"Round {round_obj.code} is already {round_obj.status} ({round_obj.result}); a price now changes nothing.",
            extra={"status": round_obj.status, "result": round_obj.result},
        )
    if clock.now() < round_obj.close_at:
        raise errors.MarketNotClosed(
            f"Round {round_obj.code} closes at {round_obj.close_at:%Y-%m-%d %H:%M:%S}Z; "
            "its closing price cannot be known yet."
        )
    if OracleObservation.objects.filter(round=round_obj, kind=OracleObservation.Kind.OPERATOR, source=source).exists():
        raise errors.PriceAlreadyEntered(f"{source} already entered a price for round {round_obj.code}.")


def operator_price_record(
    *, code: str, price: Any, evidence: str, entered_by: User, acting_user: Actor, data: dict[str, Any]
) -> OracleObservation:
    """Record an approved operator's official close for a round; it counts as one oracle source.

    The approved decision's apply (`rounds.overrides.oracle_price_propose`): one operator entered it, another
    approved it. The source is `operator:<who entered it>`.
    """
    value = canonical_price(price)
    if not isinstance(evidence, str) or not evidence.strip():
        raise errors.ReasonRequired("An entered price needs evidence (where it was read).")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        source = f"operator:{entered_by.email}"
        operator_price_check(round_obj=round_obj, source=source)
        try:
            with transaction.atomic():
                observation = OracleObservation.objects.create(
                    round=round_obj,
                    kind=OracleObservation.Kind.OPERATOR,
                    source=source,
                    price=format_price(price=value),
                    evidence=evidence.strip(),
                    entered_by=entered_by,
                    fetched_at=clock.now(),
                )
        except IntegrityError as exc:
            raise errors.PriceAlreadyEntered(f"{source} already entered a price for round {code}.") from exc
        audit_record(
            actor=acting_user,
            action="rounds.enter_oracle_price",
            obj=round_obj,
            reason=evidence.strip(),
            data={**data, "price": observation.price, "source": source},
        )
    return observation


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
        upcoming = _upcoming_code(now=now)
        if upcoming and not Round.objects.filter(code=upcoming).exists():
            try:
                _, created = round_open(code=upcoming, acting_user=BEAT)
                if created:  # not when a tick running at the same time opened it first
                    report["opened"].append(upcoming)
            except errors.RoundError as exc:
                report["pending"].append(f"open {upcoming}: {exc.detail}")
    return report


__all__ = [
    "close_subject",
    "operator_price_record",
    "reference_subject",
    "round_lock",
    "round_open",
    "round_open_at_reference",
    "rounds_tick",
]
