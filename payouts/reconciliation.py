"""Reconciliation with the PSP: ask what became of a payout that has no final answer, and act on it.

A withdrawal in `payout_submitted` waits for the PSP's webhook. When none came after
PAYOUT_RECONCILE_AFTER_MINUTES (a killed worker, a lost webhook, a PSP that accepted and went quiet),
`payout_reconcile` asks the PSP through the same SDKs (Stripe: retrieve the payout; Adyen: get the transfer),
records the answer as a `PayoutStatusCheck` (the evidence) and:

* paid -> the same transition a `paid` webhook applies (payout_submitted -> paid, burn);
* failed -> the same transition a `failed` webhook applies (payout_submitted -> payout_failed, funds held);
* pending -> nothing (asked again next time);
* not found, an unknown status, or an answer that contradicts ours (another amount or currency)
  -> manual review (payout_failed, funds held) with the PSP's answer in the audit record;
* error (we could not ask) -> recorded, nothing changes.

The PSP is called outside any transaction, under the payout's lease (payouts/leases.py: never while a
submission or another status call for the payout may be running; a held lease skips the payout this time);
the result is applied under the withdrawal's row lock, and only if the withdrawal is still `payout_submitted`
on the same attempt (a webhook may have won the race).

Manual resolution (`confirm_sent` / `refund_failed`) from `payout_submitted` is allowed only once the PSP
answered a status call for the current attempt, or PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES after the submission
with no answer at all (`resolution_blocker`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ops.actors import SystemActor
from ops.tracing import flow_bind

from .errors import InvalidTransition, WithdrawalNotFound
from .leases import LeaseBusy, lease_claim, lease_release
from .lock_objects import withdrawal_lock
from .models import PayoutStatusCheck, Withdrawal
from .providers import PayoutStatus, StatusResult, get_provider
from .services import _burn, _transition

logger = logging.getLogger(__name__)

RECONCILER = SystemActor("payout-reconciler")


def reconcile_after_s() -> int:
    """How long a submitted payout waits for its webhook before we ask the PSP (setting in minutes)."""
    return int(float(settings.PAYOUT_RECONCILE_AFTER_MINUTES) * 60)


def manual_resolve_after_s() -> int:
    """How long after submission an operator may resolve without any answer from the PSP (minutes)."""
    return int(float(settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES) * 60)


@dataclass(frozen=True)
class Reconciled:
    """What reconciliation did for one withdrawal."""

    withdrawal_id: int
    answer: str  # a PayoutStatus value, or "skipped"
    action: str

    def line(self) -> str:
        return f"withdrawal {self.withdrawal_id}: PSP says {self.answer} -> {self.action}"


def payouts_to_reconcile(*, older_than_s: int | None = None) -> list[int]:
    """Return ids of submitted payouts with no final answer for longer than the limit, oldest first."""
    limit = reconcile_after_s() if older_than_s is None else older_than_s
    return list(
        Withdrawal.objects.filter(
            state=Withdrawal.State.PAYOUT_SUBMITTED, state_changed_at__lte=timezone.now() - timedelta(seconds=limit)
        )
        .order_by("state_changed_at", "id")
        .values_list("pk", flat=True)[:200]
    )


def _contradiction(withdrawal: Withdrawal, result: StatusResult) -> str:
    if result.amount_u is not None and result.amount_u != withdrawal.amount_u:
        return f"PSP amount {result.amount_u} differs from ours {withdrawal.amount_u}"
    if result.currency and result.currency.upper() != withdrawal.currency.upper():
        return f"PSP currency {result.currency} differs from ours {withdrawal.currency}"
    return ""


def _planned(withdrawal: Withdrawal, result: StatusResult) -> str:
    """What `_apply` would do with this answer (for a dry run)."""
    contradiction = (
        _contradiction(withdrawal, result) if result.status in (PayoutStatus.PAID, PayoutStatus.PENDING) else ""
    )
    if contradiction or result.status in (PayoutStatus.NOT_FOUND, PayoutStatus.UNKNOWN):
        return f"would go to manual review: {contradiction or result.detail}"
    return {
        PayoutStatus.PAID: "would be marked paid (held funds burned)",
        PayoutStatus.FAILED: "would go to payout_failed (funds stay held)",
        PayoutStatus.PENDING: "nothing: no final answer yet",
    }.get(result.status, "nothing: could not ask")


def payout_reconcile(*, withdrawal_id: int, dry_run: bool = False) -> Reconciled:
    """Ask the PSP about one submitted payout and apply its answer; safe to run twice.

    With `dry_run`, ask and report what would happen; record and change nothing.
    """
    withdrawal = Withdrawal.objects.filter(pk=withdrawal_id).first()
    if withdrawal is None:
        raise WithdrawalNotFound(f"No withdrawal {withdrawal_id}.")
    flow_bind(withdrawal.flow_id)
    if withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED:
        return Reconciled(withdrawal_id, "skipped", f"withdrawal is {withdrawal.state}; nothing to reconcile")
    with transaction.atomic():  # no status call while a submission (or another status call) may be running
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        if withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED:
            return Reconciled(withdrawal_id, "skipped", f"withdrawal is {withdrawal.state}; nothing to reconcile")
        lease = lease_claim(withdrawal=withdrawal, purpose=RECONCILER.name)
    if isinstance(lease, LeaseBusy):
        return Reconciled(withdrawal_id, "skipped", lease.line())
    key, reference = withdrawal.idempotency_key, withdrawal.psp_reference
    try:
        result = get_provider(withdrawal.provider).status(
            withdrawal=withdrawal, idempotency_key=key, psp_reference=reference
        )
    except Exception as exc:  # an unexpected library error: record it, change nothing
        logger.exception("status call to %s failed for withdrawal %s", withdrawal.provider, withdrawal_id)
        result = StatusResult(PayoutStatus.ERROR, detail=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        if dry_run:
            lease_release(lease)
    if dry_run:
        return Reconciled(withdrawal_id, str(result.status), f"dry run: {_planned(withdrawal, result)}")

    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        check = PayoutStatusCheck(
            withdrawal=withdrawal,
            provider=withdrawal.provider,
            idempotency_key=key,
            answer=str(result.status),
            psp_reference=result.psp_reference,
            psp_status=result.psp_status,
            detail=result.detail,
            evidence=result.evidence,
        )
        if withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED or withdrawal.idempotency_key != key:
            check.action = f"none: withdrawal became {withdrawal.state} meanwhile"
        else:
            check.action = _apply(withdrawal=withdrawal, result=result, key=key)
        check.save()
        lease_release(lease)  # last: the saves above wrote the lease back as it was
    log = logger.info if result.status in (PayoutStatus.PAID, PayoutStatus.PENDING) else logger.warning
    log(
        "reconciled withdrawal %s with %s: %s (%s) -> %s",
        withdrawal_id,
        withdrawal.provider,
        result.status,
        result.detail,
        check.action,
    )
    return Reconciled(withdrawal_id, str(result.status), check.action)


def _apply(*, withdrawal: Withdrawal, result: StatusResult, key: str) -> str:
    evidence = f"{withdrawal.provider} status call for {key}: {result.status} ({result.detail})"
    data: dict[str, Any] = {"idempotency_key": key, "psp_status": result.psp_status, "source": "reconciliation"}
    contradiction = (
        _contradiction(withdrawal, result) if result.status in (PayoutStatus.PAID, PayoutStatus.PENDING) else ""
    )
    if contradiction or result.status in (PayoutStatus.NOT_FOUND, PayoutStatus.UNKNOWN):
        why = contradiction or evidence
        _transition(
            withdrawal=withdrawal,
            action="mark_failed",
            actor=RECONCILER,
            reason=f"manual review: {why}",
            data={**data, "evidence": result.evidence},
        )
        return f"manual review (payout_failed): {why}"[:100]
    if result.status == PayoutStatus.PAID:
        if result.psp_reference and not withdrawal.psp_reference:
            withdrawal.psp_reference = result.psp_reference
        _transition(withdrawal=withdrawal, action="mark_paid", actor=RECONCILER, reason=evidence, data=data)
        _burn(withdrawal=withdrawal, actor=RECONCILER, reason=evidence)
        return "paid"
    if result.status == PayoutStatus.FAILED:
        if result.psp_reference and not withdrawal.psp_reference:
            withdrawal.psp_reference = result.psp_reference
        _transition(withdrawal=withdrawal, action="mark_failed", actor=RECONCILER, reason=evidence, data=data)
        return "payout_failed"
    if result.status == PayoutStatus.PENDING and result.psp_reference and not withdrawal.psp_reference:
        withdrawal.psp_reference = result.psp_reference
        withdrawal.save(update_fields=["psp_reference"])
    return "none: no final answer yet" if result.status == PayoutStatus.PENDING else "none: could not ask"


def payouts_reconcile(*, older_than_s: int | None = None, dry_run: bool = False) -> list[Reconciled]:
    """Reconcile every submitted payout waiting longer than the limit (beat and `reconcile_payouts`)."""
    return [
        payout_reconcile(withdrawal_id=pk, dry_run=dry_run) for pk in payouts_to_reconcile(older_than_s=older_than_s)
    ]


def resolution_blocker(withdrawal: Withdrawal) -> str:
    """Return why a submitted payout may not be resolved by hand yet, or "" when it may.

    It may once the PSP answered a status call about the current attempt, or when no answer came at all
    PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES after the submission.
    """
    if withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED:
        return ""
    rail_blocker = get_provider(withdrawal.provider).resolution_blocker(withdrawal=withdrawal)
    if rail_blocker:
        return rail_blocker
    if PayoutStatusCheck.objects.filter(
        withdrawal=withdrawal, idempotency_key=withdrawal.idempotency_key, answer__in=PayoutStatusCheck.ANSWERED
    ).exists():
        return ""
    if withdrawal.state_changed_at <= timezone.now() - timedelta(seconds=manual_resolve_after_s()):
        return ""
    return (
        f"Withdrawal {withdrawal.pk} is payout_submitted and the PSP has not been asked about attempt "
        f"{withdrawal.idempotency_key} yet; run `python manage.py reconcile_payouts --withdrawal {withdrawal.pk}` "
        "first. Nothing was changed."
    )


def require_resolvable(withdrawal: Withdrawal) -> None:
    """Raise InvalidTransition (409) when `resolution_blocker` says no."""
    blocker = resolution_blocker(withdrawal)
    if blocker:
        raise InvalidTransition(blocker, extra={"withdrawal_id": withdrawal.pk, "state": withdrawal.state})
