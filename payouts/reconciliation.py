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

Manual resolution follows the PSP's word (`psp_word`: its latest answer about the current attempt, from a
status call or a webhook). `confirm_sent`, `refund_failed` and `retry` are refused while that answer is pending
or in transit (`PspAnswerPending`, 409), from `payout_submitted` and `payout_failed` alike: the PSP may still
pay, so confirming would be unfounded and refunding or sending again could pay twice. From `payout_submitted`,
`confirm_sent` / `refund_failed` are allowed only once the PSP answered, or PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES
after the submission with no answer at all (`resolution_blocker`). `confirm_sent` needs two operators, whatever
the amount, unless the PSP's latest answer is `paid` (`psp_said_paid`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ops.actors import SystemActor
from ops.tracing import flow_bind

from .errors import InvalidTransition, PspAnswerPending, WithdrawalNotFound
from .leases import LeaseBusy, lease_claim, lease_release
from .lock_objects import withdrawal_lock
from .models import PayoutAttempt, PayoutEvent, PayoutStatusCheck, Withdrawal
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


@dataclass(frozen=True)
class PspWord:
    """The PSP's latest answer about a payout attempt: what it said, where we heard it, and when."""

    answer: str  # paid, failed, pending, not_found, unknown, contradicted
    source: str
    at: datetime

    @property
    def pending(self) -> bool:
        """Not final yet: pending, or in transit (Stripe's `in_transit` and Adyen's booking states map here)."""
        return self.answer == PayoutStatus.PENDING


def _webhook_answer(result: str) -> str:
    """What a stored payout webhook said, from the result `payout_event_process` recorded ("" if nothing)."""
    if result in ("paid", "already paid") or result.startswith("review: PSP says paid"):
        return PayoutStatus.PAID
    if result in ("payout_failed", "already in manual review") or result.startswith("review: PSP says failed"):
        return PayoutStatus.FAILED
    return ""


def psp_word(withdrawal: Withdrawal) -> PspWord | None:
    """Return the PSP's latest answer about the withdrawal's current attempt, or None if it never answered.

    The answers are the status calls (`reconcile_payouts`; an `error` is not an answer) and the payout webhooks
    received since the attempt started. A `paid` that contradicts our amount or currency counts as
    `contradicted`, not paid.
    """
    key = withdrawal.idempotency_key
    words: list[PspWord] = []
    check = (
        PayoutStatusCheck.objects.filter(
            withdrawal=withdrawal, idempotency_key=key, answer__in=PayoutStatusCheck.ANSWERED
        )
        .order_by("-checked_at", "-id")
        .first()
    )
    if check is not None:
        answer = check.answer
        if answer == PayoutStatus.PAID and check.action.startswith("manual review"):
            answer = "contradicted"
        words.append(PspWord(answer=answer, source=f"status call {check.pk}", at=check.checked_at))
    started = (
        PayoutAttempt.objects.filter(withdrawal=withdrawal, idempotency_key=key)
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    if started is not None:
        for event_id, result, received_at in (
            PayoutEvent.objects.filter(withdrawal=withdrawal, received_at__gte=started)
            .order_by("-received_at", "-id")
            .values_list("event_id", "result", "received_at")
        ):
            answer = _webhook_answer(result)
            if answer:
                words.append(PspWord(answer=answer, source=f"webhook {event_id}", at=received_at))
                break
    return max(words, key=lambda w: w.at) if words else None


def psp_said_paid(withdrawal: Withdrawal) -> bool:
    """Whether the PSP's latest answer about the current attempt is `paid` (one operator may confirm it sent)."""
    word = psp_word(withdrawal)
    return word is not None and word.answer == PayoutStatus.PAID


def resolution_blocker(withdrawal: Withdrawal, decision: str = "") -> str:
    """Return why a payout may not be resolved by hand yet with this decision, or "" when it may.

    `confirm_sent`, `refund_failed` and `retry` are refused while the PSP's latest answer about the current
    attempt is pending or in transit.
    From `payout_submitted`, resolving is allowed once the PSP answered a status call or a webhook about the
    current attempt, or when no answer came at all PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES after the submission.
    """
    return _rail_blocker(withdrawal) or _pending_blocker(withdrawal, decision) or _unanswered_blocker(withdrawal)


def _rail_blocker(withdrawal: Withdrawal) -> str:
    if withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED:
        return ""
    return get_provider(withdrawal.provider).resolution_blocker(withdrawal=withdrawal)


# What each manual decision would do while the PSP may still pay the current attempt.
PENDING_REFUSALS = {
    "confirm_sent": "it cannot be confirmed as sent",
    "refund_failed": "the held funds cannot be refunded: the PSP may still pay it, and the player would be paid twice",
    "retry": "it cannot be sent again: the PSP may still pay it, and a new attempt would pay twice",
}


def _pending_blocker(withdrawal: Withdrawal, decision: str) -> str:
    if decision not in PENDING_REFUSALS or withdrawal.state not in (
        Withdrawal.State.PAYOUT_SUBMITTED,
        Withdrawal.State.PAYOUT_FAILED,
    ):
        return ""
    word = psp_word(withdrawal)
    if word is None or not word.pending:
        return ""
    return (
        f"The PSP's latest answer about withdrawal {withdrawal.pk} (attempt {withdrawal.idempotency_key}) is "
        f"{word.answer} ({word.source}, {word.at:%Y-%m-%d %H:%M:%S}Z): it is not final, so "
        f"{PENDING_REFUSALS[decision]}. Wait for its webhook or ask again with `python manage.py reconcile_payouts "
        f"--withdrawal {withdrawal.pk}`; to stop the payout, cancel it at the PSP first. Nothing was changed."
    )


def _unanswered_blocker(withdrawal: Withdrawal) -> str:
    if withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED:
        return ""
    if psp_word(withdrawal) is not None:
        return ""
    if withdrawal.state_changed_at <= timezone.now() - timedelta(seconds=manual_resolve_after_s()):
        return ""
    return (
        f"Withdrawal {withdrawal.pk} is payout_submitted and the PSP has not been asked about attempt "
        f"{withdrawal.idempotency_key} yet; run `python manage.py reconcile_payouts --withdrawal {withdrawal.pk}` "
        "first. Nothing was changed."
    )


def require_resolvable(withdrawal: Withdrawal, decision: str = "") -> None:
    """Raise PspAnswerPending (409) or InvalidTransition (409) when `resolution_blocker` says no."""
    extra = {"withdrawal_id": withdrawal.pk, "state": withdrawal.state}
    rail = _rail_blocker(withdrawal)
    if rail:
        raise InvalidTransition(rail, extra=extra)
    pending = _pending_blocker(withdrawal, decision)
    if pending:
        raise PspAnswerPending(pending, extra=extra)
    blocker = _unanswered_blocker(withdrawal)
    if blocker:
        raise InvalidTransition(blocker, extra=extra)
