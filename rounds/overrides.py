"""Outcomes decided by people, under four eyes (maker-checker), and the emergency stop.

Whatever decides a round's outcome takes two operators, through `ops.approvals`: one proposes with the
evidence, a different one approves and it is applied in the approver's transaction.

- a forced UP/DOWN (`force_result_propose`), settled through `rounds.settlement.settlement_apply`;
- a reference close entered by hand when the oracle cannot give it (`reference_propose`): the round is not
  open until the second operator approves; the approval opens it at that reference;
- an official close entered by hand (`oracle_price_propose`): it counts as an oracle source only once
  approved (until then settlement does not see it).

VOID is the one-operator emergency stop, `round_void`.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction

from ops.actors import Actor, actor_label, require_operator
from ops.approvals import DecisionKind, checker_reason, decision_propose, decisions_cancel, register_decision
from ops.models import Proposal
from ops.tracing import flow_span
from rounds import clock
from rounds.domain.pool import Result, VoidReason

from . import errors
from .lock_objects import round_lock_row
from .models import Bet, Round
from .services import (
    canonical_price,
    close_subject,
    open_lock,
    operator_price_check,
    operator_price_record,
    reference_subject,
    round_lock,
    round_open_at_reference,
    round_open_check,
)
from .settlement import force_subject, settlement_apply, settlement_flow_id

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)


FORCE_KIND = "rounds.force_result"
FORCE_PERMISSION = "rounds.force_round_result"
REFERENCE_KIND = "rounds.reference_close"
CLOSE_KIND = "rounds.operator_close"
PRICE_PERMISSION = "rounds.enter_oracle_price"


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
        round_obj, _ = settlement_apply(
            round_id=round_obj.pk,
            result=forced_result,
            void_reason=None,
            close=None,
            evidence=[],
            forced=forced,
            acting_user=checker,
            reason=checker_reason(proposal),
        )
    return {"round": round_obj.code, "status": round_obj.status, "result": round_obj.result}


def _evidence(evidence: object, what: str) -> str:
    if not isinstance(evidence, str) or not evidence.strip():
        raise errors.ReasonRequired(f"{what} needs evidence: where the price was read (source, URL, terminal).")
    return evidence.strip()


# --- A reference close entered by hand -------------------------------------------------------------


def reference_propose(*, code: str, reference: object, reason: str, evidence: str, acting_user: Actor) -> Proposal:
    """Operator A proposes the reference close of a round the oracle cannot open; operator B's approval opens it.

    Checked now (a session, not open yet, not too late, the previous session final) and again at approval.
    Until then no round exists and no bet is taken; if the oracle answers meanwhile and beat opens the round,
    the proposal is cancelled.
    """
    require_operator(acting_user, permission=PRICE_PERMISSION, what="enter a round's reference close")
    value = canonical_price(reference)
    evidence = _evidence(evidence, "A reference close")
    if not isinstance(reason, str) or not reason.strip():
        raise errors.ReasonRequired("A reference close given by hand needs a reason.")
    with transaction.atomic():
        open_lock()
        round_open_check(code=code)
        return decision_propose(
            kind=REFERENCE_KIND,
            subject=reference_subject(code),
            payload={"reference_close": str(value)},
            amounts={},
            parties=[],
            reason=reason,
            evidence=evidence,
            acting_user=acting_user,
        )


def _apply_reference(proposal: Proposal, checker: User) -> dict[str, Any]:
    """Open the round at the proposed reference (the approver's transaction)."""
    code = proposal.subject.rsplit(":", 1)[1]
    round_obj = round_open_at_reference(
        code=code,
        reference=Decimal(proposal.payload["reference_close"]),
        source=f"operator: {proposal.evidence} (proposed by {proposal.proposed_by.email}, approved by {checker.email})",
        acting_user=checker,
        reason=checker_reason(proposal),
        data={
            "proposal": proposal.pk,
            "proposed_by": proposal.proposed_by.email,
            "proposal_reason": proposal.reason,
            "approved_by": checker.email,
        },
    )
    return {"round": round_obj.code, "status": round_obj.status, "reference_close": round_obj.reference_close}


# --- An official close entered by hand ------------------------------------------------------------


def oracle_price_propose(*, code: str, price: object, evidence: str, acting_user: Actor, reason: str = "") -> Proposal:
    """Operator A proposes a round's official close with evidence; once B approves it, it counts as one source.

    Until approved, settlement does not see it (`rounds.oracle.operator_sources` reads applied prices only).
    """
    operator = require_operator(acting_user, permission=PRICE_PERMISSION, what="enter an official close")
    value = canonical_price(price)
    evidence = _evidence(evidence, "An entered price")
    with transaction.atomic():
        round_obj = round_lock_row(code=code)
        operator_price_check(round_obj=round_obj, source=f"operator:{operator.email}")
        return decision_propose(
            kind=CLOSE_KIND,
            subject=close_subject(round_obj.code),
            payload={"price": str(value)},
            amounts={},
            parties=[],
            reason=(reason or "").strip() or f"official close of round {round_obj.code} entered by hand",
            evidence=evidence,
            acting_user=acting_user,
        )


def _apply_close(proposal: Proposal, checker: User) -> dict[str, Any]:
    """Record the proposed close as an oracle source (the approver's transaction)."""
    code = proposal.subject.rsplit(":", 1)[1]
    observation = operator_price_record(
        code=code,
        price=proposal.payload["price"],
        evidence=proposal.evidence,
        entered_by=proposal.proposed_by,
        acting_user=checker,
        data={"proposal": proposal.pk, "proposed_by": proposal.proposed_by.email, "approved_by": checker.email},
    )
    return {"round": code, "source": observation.source, "price": observation.price}


def register_round_decisions() -> None:
    """Offer forced results and hand-entered prices to the maker-checker: always two operators."""
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
    register_decision(
        DecisionKind(
            name=REFERENCE_KIND,
            label="open a round at a reference close entered by hand",
            permission=PRICE_PERMISSION,
            lock=lambda subject: open_lock(),
            apply=_apply_reference,
            always_two=True,
        )
    )
    register_decision(
        DecisionKind(
            name=CLOSE_KIND,
            label="enter a round's official close by hand",
            permission=PRICE_PERMISSION,
            lock=lambda subject: round_lock_row(code=subject.rsplit(":", 1)[1]),
            apply=_apply_close,
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
            settled = settlement_apply(
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


__all__ = [
    "CLOSE_KIND",
    "FORCE_KIND",
    "FORCE_PERMISSION",
    "PRICE_PERMISSION",
    "REFERENCE_KIND",
    "force_result_propose",
    "oracle_price_propose",
    "reference_propose",
    "register_round_decisions",
    "round_void",
]
