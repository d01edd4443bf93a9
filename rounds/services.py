"""Writes for rounds: open, lock, operators' oracle prices, and the tick that drives them on the XNYS clock.

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
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from ops.actors import BEAT, Actor, actor_label, require_operator
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


def _day(code: str) -> date:
    try:
        return calendar.parse_code(code)
    except calendar.InvalidRoundCode as exc:
        raise errors.InvalidRoundCode(str(exc)) from exc


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
        stripes_create(code=code, currency=currency)
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


def oracle_price_enter(*, code: str, price: Any, evidence: str, acting_user: Actor) -> OracleObservation:
    """Record an operator's official close for a round, with evidence; it counts as one source."""
    operator = require_operator(acting_user, permission="rounds.enter_oracle_price", what="enter an official close")
    value = _canonical_price(price)
    if not evidence.strip():
        raise errors.ReasonRequired("An entered price needs evidence (where it was read).")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        if round_obj.is_finished:
            raise errors.RoundAlreadySettled(
                f"Round {code} is already {round_obj.status} ({round_obj.result}); a price now changes nothing.",
                extra={"status": round_obj.status, "result": round_obj.result},
            )
        if clock.now() < round_obj.close_at:
            raise errors.MarketNotClosed(
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
                    entered_by=operator,
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
                round_open(code=upcoming, acting_user=BEAT)
                report["opened"].append(upcoming)
            except errors.RoundError as exc:
                report["pending"].append(f"open {upcoming}: {exc.detail}")
    return report


__all__ = [
    "oracle_price_enter",
    "round_lock",
    "round_open",
    "rounds_tick",
]
