"""Manual adjustments with four eyes: propose (nothing moves), approve by another operator (one journal).

The house manual's "Manual Balance Adjustment ... only with proper approval" and the onboarding pack's
red line (no manual change without a second person and an audit entry).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from ops.audit import audit_record
from ops.errors import ApplicationError, Forbidden

from .models import Account, Adjustment, Journal
from .services import Leg, _validate_legs, journal_post


class AdjustmentRefused(ApplicationError):
    code = "ledger/adjustment-refused"
    title = "Adjustment refused"
    status = 409


def _require(user: Any, perm: str, what: str) -> None:
    if not (getattr(user, "is_staff", False) and user.is_active and user.has_perm(perm)):
        raise Forbidden(f"{getattr(user, 'email', user)} may not {what}.")


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise AdjustmentRefused("A reason is required; it goes in the audit log.")
    return reason.strip()


def adjustment_propose(*, legs: Sequence[tuple[int, int]], reason: str, acting_user: Any) -> Adjustment:
    """Record a proposed correction: (account_id, amount_u) legs that balance per currency. Moves nothing."""
    _require(acting_user, "ledger.post_adjustment", "propose adjustments")
    reason = _reason(reason)
    accounts = Account.objects.in_bulk([account_id for account_id, _ in legs])
    missing = [account_id for account_id, _ in legs if account_id not in accounts]
    if missing:
        raise AdjustmentRefused(f"No account with id {missing[0]}.")
    _validate_legs([Leg(accounts[account_id], amount_u) for account_id, amount_u in legs])
    with transaction.atomic():
        adjustment = Adjustment.objects.create(
            legs=[{"account_id": a, "amount_u": amount} for a, amount in legs], reason=reason, proposed_by=acting_user
        )
        audit_record(actor=acting_user, action="ledger.adjustment.propose", obj=adjustment, reason=reason,
                     to_state=adjustment.status, data={"legs": adjustment.legs})
    return adjustment


def adjustment_decide(*, adjustment_id: int, approve: bool, reason: str, acting_user: Any) -> Adjustment:
    """Approve (post the journal) or reject a proposal; the decider must not be the proposer."""
    _require(acting_user, "ledger.approve_adjustment", "approve adjustments")
    reason = _reason(reason)
    with transaction.atomic():
        adjustment = Adjustment.objects.select_for_update().filter(pk=adjustment_id).first()
        if adjustment is None:
            raise AdjustmentRefused(f"No adjustment {adjustment_id}.")
        if adjustment.status != Adjustment.Status.PROPOSED:
            raise AdjustmentRefused(f"Adjustment {adjustment_id} is already {adjustment.status}.")
        if adjustment.proposed_by_id == acting_user.pk:
            raise AdjustmentRefused("A second operator must decide; you proposed this adjustment.")
        journal: Journal | None = None
        if approve:
            accounts = Account.objects.in_bulk([leg["account_id"] for leg in adjustment.legs])
            journal = journal_post(
                type="adjustment", reference=f"adjustment:{adjustment.pk}",
                legs=[Leg(accounts[leg["account_id"]], leg["amount_u"]) for leg in adjustment.legs],
                actor=acting_user, metadata={"reason": adjustment.reason, "proposed_by": adjustment.proposed_by.email,
                                             "approval": reason},
            )
        before = adjustment.status
        adjustment.status = Adjustment.Status.APPROVED if approve else Adjustment.Status.REJECTED
        adjustment.decided_by = acting_user
        adjustment.decision_reason = reason
        adjustment.decided_at = timezone.now()
        adjustment.journal = journal
        adjustment.save()
        audit_record(actor=acting_user, action=f"ledger.adjustment.{'approve' if approve else 'reject'}",
                     obj=adjustment, reason=reason, from_state=before, to_state=adjustment.status,
                     data={"journal": journal.reference if journal else None})
    return adjustment
