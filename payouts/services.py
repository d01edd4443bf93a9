"""Writes for withdrawals and payouts. Admin, API, commands, tasks and webhooks all call these.

Every action locks its withdrawal row (SELECT ... FOR UPDATE), checks the transition and the
actor's permission, fires the django-fsm transition, moves the money, and writes the audit record,
all in one short transaction. Two operators acting at once: the second waits for the lock, then
finds the new state and gets a 409; money moves once (ledger references are unique forever, too).

Ledger (DESIGN.md §3): hold at request (available -> held, `withdrawal_hold`), burn when paid
(held -> `psp:<provider>`, `payout`), release at reject/cancel/refund (held -> available,
`withdrawal_release`). Approval moves no money.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed, has_transition_perm

from ledger.currencies import get_currency
from ledger.errors import InvalidAmount
from ledger.models import Account, Journal
from ledger.services import external_account, transfer, user_account
from ops.actors import PAYOUT_WORKER, Actor, SystemActor, is_operator, require_actor, require_operator, require_player
from ops.approvals import DecisionKind, checker_reason, decision_propose, decisions_cancel, register_decision
from ops.audit import actor_label, audit_record
from ops.models import Proposal, Switch
from ops.switches import switch_is_on, switch_set
from ops.tracing import flow_bind
from ops.validation import amount_u_check

from .errors import (
    ConcurrentAction,
    InvalidTransition,
    InvalidWithdrawal,
    ReasonRequired,
    TransitionForbidden,
    WithdrawalNotFound,
)
from .leases import LeaseBusy, lease_claim, lease_left_s, lease_release
from .lock_objects import withdrawal_lock
from .models import PayoutAttempt, PayoutEvent, Withdrawal
from .providers import Outcome, PayoutStatus, SubmitResult, get_provider
from .selectors import withdrawal_subject

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

SYSTEM_ACTIONS = frozenset({"submit", "mark_paid", "mark_failed"})
RESOLVE_DECISIONS = ("confirm_sent", "refund_failed", "retry")
APPROVE_KIND = "payouts.approve"
RESOLVE_KIND = "payouts.resolve"
IN_FLIGHT = "in_flight"  # payout_submit's status when another caller holds the payout's lease
LEASE_RESUME_SLACK_S = 1.0  # a resume after a lease runs this long after its expiry (clocks, queue latency)
ACTION_LABELS = {
    "approve": "approve",
    "reject": "reject",
    "cancel": "cancel",
    "submit": "submit the payout of",
    "mark_paid": "mark as paid",
    "mark_failed": "mark as failed",
    "confirm_sent": "confirm as sent",
    "refund_failed": "refund",
    "retry": "retry the payout of",
}


# --- Settings ------------------------------------------------------------------------------


def auto_pause_after_failures() -> int:
    """Consecutive PSP failures after which payouts pause themselves."""
    return int(settings.PAYOUT_AUTO_PAUSE_AFTER_FAILURES)


# --- Helpers -------------------------------------------------------------------------------


def _require_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRequired("Give a reason for this decision; it is kept in the audit log. Nothing was changed.")
    return reason.strip()


def _authorize(*, withdrawal: Withdrawal, action: str, actor: Actor) -> None:
    """Refuse unless the transition is possible now and this actor may fire it."""
    require_actor(actor)
    method = getattr(withdrawal, action)
    if not can_proceed(method):
        raise InvalidTransition(
            f"Withdrawal {withdrawal.pk} is {withdrawal.state}; cannot {ACTION_LABELS[action]} it. Nothing was changed.",
            extra={"withdrawal_id": withdrawal.pk, "state": withdrawal.state},
        )
    if action in SYSTEM_ACTIONS:
        if not isinstance(actor, SystemActor):
            raise TransitionForbidden(f"Only the payout system may {ACTION_LABELS[action]} a withdrawal.")
        return
    if isinstance(actor, SystemActor) or not has_transition_perm(method, actor):
        raise TransitionForbidden(
            f"{actor_label(actor)} may not {ACTION_LABELS[action]} withdrawal {withdrawal.pk}. Nothing was changed."
        )
    if action != "cancel" and actor.pk == withdrawal.user_id:
        raise TransitionForbidden("Nobody may decide on their own withdrawal.")
    if action != "cancel" and not is_operator(actor):
        raise TransitionForbidden(f"Only an active operator may {ACTION_LABELS[action]} a withdrawal.")


def _transition(
    *, withdrawal: Withdrawal, action: str, actor: Actor, reason: str = "", data: dict[str, Any] | None = None
) -> None:
    """Fire one transition on a locked withdrawal, save it and write the audit record."""
    _authorize(withdrawal=withdrawal, action=action, actor=actor)
    from_state = withdrawal.state
    getattr(withdrawal, action)()
    withdrawal.state_changed_at = timezone.now()
    try:
        withdrawal.save()
    except ConcurrentTransition as exc:
        raise ConcurrentAction(f"Withdrawal {withdrawal.pk} changed meanwhile; reload and retry.") from exc
    audit_record(
        actor=actor,
        action=f"payouts.withdrawal.{action}",
        obj=withdrawal,
        object_type="payouts.withdrawal",
        reason=reason,
        from_state=from_state,
        to_state=withdrawal.state,
        data={"amount_u": withdrawal.amount_u, "currency": withdrawal.currency, **(data or {})},
    )
    if action in SYSTEM_ACTIONS or action in ("cancel", "reject"):
        # Decisions pending on the old state can no longer apply.
        decisions_cancel(
            subject=withdrawal_subject(withdrawal.pk),
            actor=actor,
            reason=f"withdrawal {withdrawal.pk} is now {withdrawal.state}",
        )


def _withdrawal_id(subject: str) -> int:
    return int(subject.rsplit(":", 1)[1])


def _hold_reference(withdrawal: Withdrawal) -> str:
    return f"withdrawal:{withdrawal.pk}:hold"


def _release(*, withdrawal: Withdrawal, actor: Actor, reason: str) -> Journal:
    """Move the held funds back to the player's available balance (once per withdrawal)."""
    return transfer(
        source=user_account(user=withdrawal.user, currency=withdrawal.currency, kind=Account.Kind.USER_HELD),
        destination=user_account(user=withdrawal.user, currency=withdrawal.currency),
        amount_u=withdrawal.amount_u,
        type="withdrawal_release",
        reference=f"withdrawal:{withdrawal.pk}:release",
        actor=actor,
        metadata={"withdrawal_id": withdrawal.pk, "reason": reason, "state": withdrawal.state},
    )


def _burn(*, withdrawal: Withdrawal, actor: Actor, reason: str) -> Journal:
    """Move the held funds out to the PSP's clearing account: the money has left (once per withdrawal)."""
    return transfer(
        source=user_account(user=withdrawal.user, currency=withdrawal.currency, kind=Account.Kind.USER_HELD),
        destination=external_account(provider=withdrawal.provider, currency=withdrawal.currency),
        amount_u=withdrawal.amount_u,
        type="payout",
        reference=f"withdrawal:{withdrawal.pk}:payout",
        actor=actor,
        metadata={"withdrawal_id": withdrawal.pk, "reason": reason, "psp_reference": withdrawal.psp_reference},
    )


def _enqueue_payout(withdrawal_id: int) -> None:
    """After commit: hand the withdrawal to the payout worker (the stuck-job detector catches a lost message)."""
    from .tasks import submit_payout

    submit_payout.delay(withdrawal_id)


def _enqueue_payout_after_lease(withdrawal_id: int, owner: str, left_s: float) -> None:
    """Resume a payout when the lease of `owner` expires, if that holder never gave it back (it died).

    The message acts only while `owner` still has the lease (`payout_submit(after_lease_of=...)`): a holder
    that finished released it, and the resume then does nothing (no early resubmission, no second call).
    """
    from .tasks import submit_payout

    countdown = max(0.0, left_s) + LEASE_RESUME_SLACK_S
    submit_payout.apply_async(args=[withdrawal_id], kwargs={"after_lease_of": owner}, countdown=countdown)


def _schedule_payout(withdrawal: Withdrawal) -> None:
    withdrawal_id = withdrawal.pk
    transaction.on_commit(lambda: _enqueue_payout(withdrawal_id), robust=True)


# --- Player actions ------------------------------------------------------------------------


def withdrawal_validate(
    *, user: User, amount_u: Any, currency: Any, provider: Any, destination: Any = None
) -> dict[str, Any]:
    """Refuse a withdrawal request that could never be valid (changes nothing); return the destination to store.

    The destination is required and checked by its rail's declaration (`PayoutProvider.clean_destination`):
    a missing, empty or malformed one is refused here, before anything is held.
    """
    amount_u_check(amount_u, error=InvalidAmount)
    get_currency(currency)
    rail = get_provider(provider)
    rail.validate_request(currency=currency, destination=destination)
    cleaned = rail.clean_destination(destination)
    require_player(user)
    return cleaned


def withdrawal_request(
    *,
    user: User,
    amount_u: int,
    currency: str,
    provider: str,
    destination: dict[str, Any] | None = None,
    acting_user: Actor | None = None,
) -> Withdrawal:
    """Hold the funds (available -> held) and create the withdrawal in `requested`.

    `destination` is required: the rail's own shape (`PayoutProvider.destination_shape`), stored on the
    withdrawal as a snapshot of where it is paid. A missing or malformed one raises InvalidDestination (400)
    or, on chain, InvalidChainAddress (400), and nothing is held.

    The player acts, or an operator on the player's behalf (the `withdraw` command); either way the
    withdrawal then waits for an operator's approval.

    Raises InsufficientFunds (422) and changes nothing when the available balance is too small.
    """
    snapshot = withdrawal_validate(
        user=user, amount_u=amount_u, currency=currency, provider=provider, destination=destination
    )
    actor = require_actor(acting_user if acting_user is not None else user)
    with transaction.atomic():
        withdrawal = Withdrawal.objects.create(
            user=user, amount_u=amount_u, currency=currency, provider=provider, destination=snapshot
        )
        transfer(
            source=user_account(user=user, currency=currency),
            destination=user_account(user=user, currency=currency, kind=Account.Kind.USER_HELD),
            amount_u=amount_u,
            type="withdrawal_hold",
            reference=_hold_reference(withdrawal),
            actor=actor,
            metadata={"withdrawal_id": withdrawal.pk, "provider": provider},
        )
        audit_record(
            actor=actor,
            action="payouts.withdrawal.request",
            obj=withdrawal,
            to_state=withdrawal.state,
            data={"amount_u": amount_u, "currency": currency, "provider": provider, "user": str(user.public_id)},
        )
    return withdrawal


def withdrawal_cancel(*, withdrawal_id: int, acting_user: Actor, reason: str = "") -> Withdrawal:
    """The player cancels a withdrawal still `requested`; the held funds are released."""
    require_actor(acting_user)
    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        if isinstance(acting_user, SystemActor) or withdrawal.user_id != acting_user.pk:
            raise WithdrawalNotFound(f"No withdrawal {withdrawal_id}.")
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else "cancelled by the player"
        _transition(withdrawal=withdrawal, action="cancel", actor=acting_user, reason=reason)
        _release(withdrawal=withdrawal, actor=acting_user, reason=reason)
    return withdrawal


# --- Operator decisions (maker-checker, ops.approvals) ---------------------------------------


def withdrawal_approve(
    *, withdrawal_id: int, acting_user: Actor, reason: str = "", default_reason: str = "approved"
) -> Withdrawal:
    """Approve a requested withdrawal (no money moves); queue the payout worker after commit.

    Above its currency's four-eyes threshold the first operator's approval is a proposal and a
    different operator's approval applies it (the withdrawal stays `requested` until then). The first
    operator's reason may be left out (`default_reason` is recorded); the second operator must give their own.
    """
    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        _authorize(withdrawal=withdrawal, action="approve", actor=acting_user)
        decision_propose(
            kind=APPROVE_KIND,
            subject=withdrawal_subject(withdrawal.pk),
            payload={},
            amounts={withdrawal.currency: withdrawal.amount_u},
            parties=[withdrawal.user_id],
            reason=reason,
            default_reason=default_reason,
            acting_user=acting_user,
        )
        withdrawal.refresh_from_db()
    return withdrawal


def withdrawal_reject(*, withdrawal_id: int, acting_user: Actor, reason: str) -> Withdrawal:
    """Reject a requested withdrawal with a reason; the held funds are released (back to the player)."""
    reason = _require_reason(reason)
    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        _transition(withdrawal=withdrawal, action="reject", actor=acting_user, reason=reason)
        _release(withdrawal=withdrawal, actor=acting_user, reason=reason)
    return withdrawal


def withdrawal_resolve(*, withdrawal_id: int, acting_user: Actor, decision: str, reason: str) -> Withdrawal:
    """Manual review of a failed payout: `confirm_sent` (burn), `refund_failed` (release) or `retry`.

    `confirm_sent` / `refund_failed` also apply to a payout still `payout_submitted` once the PSP was asked
    (`payouts.reconciliation.resolution_blocker`). Every decision follows the PSP's word: refused while its
    latest answer about the current attempt is pending or in transit (the PSP may still pay: a refund or a
    retry would pay twice), and `confirm_sent` needs two operators whatever the amount unless that answer is
    `paid`.

    A reason is required. Above the threshold, two different operators must make the same decision
    on the same payout attempt: the first proposes it, the second applies it.
    """
    if decision not in RESOLVE_DECISIONS:
        raise InvalidWithdrawal(f"decision must be one of {', '.join(RESOLVE_DECISIONS)}; got {decision!r}.")
    reason = _require_reason(reason)
    if decision == "refund_failed":
        _require_refundable(withdrawal_id)  # asks the PSP: outside the transaction
    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        _authorize(withdrawal=withdrawal, action=decision, actor=acting_user)
        from .reconciliation import psp_said_paid, require_resolvable  # the PSP's word about this attempt

        require_resolvable(withdrawal, decision)
        decision_propose(
            kind=RESOLVE_KIND,
            subject=withdrawal_subject(withdrawal.pk),
            payload={"decision": decision, "generation": withdrawal.payout_generation},
            amounts={withdrawal.currency: withdrawal.amount_u},
            parties=[withdrawal.user_id],
            reason=reason,
            acting_user=acting_user,
            always_two=decision == "confirm_sent" and not psp_said_paid(withdrawal),
        )
        withdrawal.refresh_from_db()
    return withdrawal


def _require_refundable(withdrawal_id: int) -> None:
    """Refuse a refund when the rail says the money already reached the player (Stripe Connect: a live transfer)."""
    withdrawal = Withdrawal.objects.filter(pk=withdrawal_id).first()
    if withdrawal is None:
        raise WithdrawalNotFound(f"No withdrawal {withdrawal_id}.")
    blocker = get_provider(withdrawal.provider).refund_blocker(withdrawal=withdrawal)
    if blocker:
        raise InvalidTransition(blocker, extra={"withdrawal_id": withdrawal.pk, "state": withdrawal.state})


def _lock_subject(subject: str) -> Withdrawal:
    return withdrawal_lock(withdrawal_id=_withdrawal_id(subject))


def _maker_data(proposal: Proposal, checker: User) -> dict[str, Any]:
    """Both operators on the checker's row (whose reason is the checker's own): who proposed it, and why."""
    return {
        "proposal": proposal.pk,
        "proposed_by": proposal.proposed_by.email,
        "proposal_reason": proposal.reason,
        "approved_by": checker.email,
    }


def _apply_approve(proposal: Proposal, checker: User) -> dict[str, Any]:
    """Apply an approval (the checker fires the transition); the payout worker is queued after commit."""
    withdrawal = _lock_subject(proposal.subject)
    _transition(
        withdrawal=withdrawal,
        action="approve",
        actor=checker,
        reason=checker_reason(proposal),
        data=_maker_data(proposal, checker),
    )
    _schedule_payout(withdrawal)
    return {"withdrawal": withdrawal.pk, "state": withdrawal.state}


def _apply_resolve(proposal: Proposal, checker: User) -> dict[str, Any]:
    """Apply a manual resolution: burn, release, or a new payout attempt."""
    withdrawal = _lock_subject(proposal.subject)
    decision = proposal.payload["decision"]
    if proposal.payload.get("generation") != withdrawal.payout_generation:
        raise InvalidTransition(
            f"Proposal {proposal.pk} was about payout attempt {proposal.payload.get('generation')}; "
            f"withdrawal {withdrawal.pk} is on attempt {withdrawal.payout_generation}. Nothing was changed."
        )
    from .reconciliation import require_resolvable

    require_resolvable(withdrawal, decision)  # the PSP may have answered "pending" since it was proposed
    if decision == "retry":
        withdrawal.payout_generation += 1
    _transition(
        withdrawal=withdrawal,
        action=decision,
        actor=checker,
        reason=checker_reason(proposal),
        data={"decision": decision, "generation": withdrawal.payout_generation, **_maker_data(proposal, checker)},
    )
    if decision == "confirm_sent":
        _burn(withdrawal=withdrawal, actor=checker, reason=proposal.reason)
    elif decision == "refund_failed":
        _release(withdrawal=withdrawal, actor=checker, reason=proposal.reason)
    else:
        _schedule_payout(withdrawal)
    return {"withdrawal": withdrawal.pk, "state": withdrawal.state, "decision": decision}


def register_withdrawal_decisions() -> None:
    """Offer withdrawal approval and manual resolution to the maker-checker."""
    register_decision(
        DecisionKind(
            name=APPROVE_KIND,
            label="approve a withdrawal",
            permission="payouts.approve_withdrawal",
            lock=_lock_subject,
            apply=_apply_approve,
        )
    )
    register_decision(
        DecisionKind(
            name=RESOLVE_KIND,
            label="resolve a failed payout",
            permission="payouts.resolve_withdrawal",
            lock=_lock_subject,
            apply=_apply_resolve,
        )
    )


# --- The payout worker ---------------------------------------------------------------------


def payouts_paused() -> str:
    """Return the name of the switch that stops payouts, or an empty string."""
    for name in (Switch.Name.PAYOUT_FREEZE, Switch.Name.PAYOUT_AUTO_PAUSE):
        if switch_is_on(name):
            return str(name)
    return ""


@dataclass(frozen=True)
class PayoutRun:
    """What one run of the payout worker did for one withdrawal."""

    status: str  # nothing_to_do, paused, in_flight (another caller holds the lease), or a provider Outcome value
    detail: str = ""
    idempotency_key: str = ""
    lease_owner: str = ""  # in_flight: who holds the lease
    lease_left_s: float = 0.0  # in_flight: seconds until that lease expires

    @property
    def retryable(self) -> bool:
        return self.status in (Outcome.AMBIGUOUS, Outcome.ERROR)


def payout_submit(
    *, withdrawal_id: int, acting_user: SystemActor = PAYOUT_WORKER, after_lease_of: str = ""
) -> PayoutRun:
    """Submit the withdrawal's payout to its PSP in three phases; safe to run twice, and at once.

    (a) short transaction: lock, check the switches, claim the payout's lease (payouts/leases.py),
    approved -> payout_submitted, record the attempt;
    (b) call the PSP outside any transaction, with our idempotency key (withdrawal id + attempt);
    (c) short transaction: record the result and release the lease. Accepted stays payout_submitted
    (paid comes by webhook); declined goes to payout_failed (funds stay held); a timeout stays
    payout_submitted and is retried with the same key only. Funds are never released automatically.

    A caller that finds the lease held (another worker, a retry or the requeue is calling the PSP about
    this payout, or the reconciler is asking for its status) makes no call and returns `in_flight`, with
    the holder and the seconds its lease has left (the task schedules a resume then).

    `after_lease_of`: a resume scheduled for when that holder's lease expires. It does nothing unless that
    holder still has the lease (it never gave it back: it died); then it takes the lease over as any caller.
    """
    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        flow_bind(withdrawal.flow_id)  # the job joins the withdrawal's flow (its logs, spans and PSP call)
        if withdrawal.state not in (Withdrawal.State.APPROVED, Withdrawal.State.PAYOUT_SUBMITTED):
            return PayoutRun("nothing_to_do", f"withdrawal is {withdrawal.state}")
        if after_lease_of and withdrawal.payout_lease_owner != after_lease_of:
            return PayoutRun("nothing_to_do", f"{after_lease_of} gave its lease back", withdrawal.idempotency_key)
        if (
            withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
            and withdrawal.attempts.filter(
                idempotency_key=withdrawal.idempotency_key,
                outcome__in=[
                    PayoutAttempt.Outcome.ACCEPTED,
                    PayoutAttempt.Outcome.DECLINED,
                    PayoutAttempt.Outcome.REFUSED,
                ],
            ).exists()
        ):
            return PayoutRun("nothing_to_do", "the PSP already answered this attempt", withdrawal.idempotency_key)
        paused = payouts_paused()
        if paused:
            logger.warning("payout of withdrawal %s not submitted: switch %s is on", withdrawal.pk, paused)
            return PayoutRun("paused", f"switch {paused} is on", withdrawal.idempotency_key)
        lease = lease_claim(withdrawal=withdrawal, purpose=acting_user.name)
        if isinstance(lease, LeaseBusy):  # another call for this payout may still be running: leave it to it
            return PayoutRun(IN_FLIGHT, lease.line(), withdrawal.idempotency_key, lease.owner, lease.left_s)
        if withdrawal.state == Withdrawal.State.APPROVED:
            withdrawal.payout_generation += 1
            _transition(
                withdrawal=withdrawal,
                action="submit",
                actor=acting_user,
                reason="payout submitted to the PSP",
                data={"generation": withdrawal.payout_generation},
            )
        key = withdrawal.idempotency_key
        # A call on this key that never came back (its caller died with the lease): ask the PSP before sending again.
        cut_off = withdrawal.attempts.filter(idempotency_key=key, outcome=PayoutAttempt.Outcome.PENDING).exists()
        attempt = PayoutAttempt.objects.create(
            withdrawal=withdrawal,
            provider=withdrawal.provider,
            idempotency_key=key,
            lease_owner=lease.owner,
            took_over_from=lease.took_over_from,
        )

    left_s = lease_left_s(lease, provider=withdrawal.provider)
    if left_s < 0:  # stalled since the claim: the call might outlive the lease, so it is not made
        result = SubmitResult(Outcome.ERROR, detail=f"not called: the lease had {left_s:.1f} s too little left")
    else:
        result = (_found_at_psp(withdrawal=withdrawal, key=key) if cut_off else None) or _call_psp(
            withdrawal=withdrawal, key=key
        )

    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
        PayoutAttempt.objects.filter(pk=attempt.pk).update(
            outcome=str(result.outcome),
            psp_reference=result.psp_reference,
            detail=result.detail,
            finished_at=timezone.now(),
        )
        current = key == withdrawal.idempotency_key
        if result.outcome == Outcome.ACCEPTED and current and result.psp_reference:
            withdrawal.psp_reference = result.psp_reference
            withdrawal.save(update_fields=["psp_reference"])
        elif (
            result.outcome in (Outcome.DECLINED, Outcome.REFUSED)
            and current
            and (withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED)
        ):
            if result.psp_reference:
                withdrawal.psp_reference = result.psp_reference
            _transition(
                withdrawal=withdrawal,
                action="mark_failed",
                actor=acting_user,
                reason=f"PSP {result.outcome}: {result.detail}",
                data={"idempotency_key": key},
            )
        lease_release(lease)  # last: the saves above wrote the lease back as it was
    log = logger.info if result.outcome == Outcome.ACCEPTED else logger.warning
    log("payout of withdrawal %s via %s: %s %s", withdrawal.pk, withdrawal.provider, result.outcome, result.detail)
    _check_provider_health(provider=withdrawal.provider)
    return PayoutRun(str(result.outcome), result.detail, key)


def _call_psp(*, withdrawal: Withdrawal, key: str) -> SubmitResult:
    try:
        return get_provider(withdrawal.provider).submit(withdrawal=withdrawal, idempotency_key=key)
    except Exception as exc:  # an unexpected library error: the call may have happened
        logger.exception("payout provider %s raised for withdrawal %s", withdrawal.provider, withdrawal.pk)
        return SubmitResult(Outcome.AMBIGUOUS, detail=f"{type(exc).__name__}: {exc}"[:500])


def _found_at_psp(*, withdrawal: Withdrawal, key: str) -> SubmitResult | None:
    """After a caller died mid-call on this key: what the PSP already has for it, or None to submit again.

    The PSP has it (pending or paid): accepted, with no second submission. Half of it (Stripe Connect: the
    transfer without its payout): None, and the same key completes it (the transfer is found, not made twice). It failed there, or its amount
    or currency is not ours: declined (manual review, funds held). Not found, or no clear answer: None,
    and the payout is submitted again with the same key (the PSP replays it if it had it after all).
    """
    provider = get_provider(withdrawal.provider)
    if not provider.status_before_resubmit:
        return None
    try:
        answer = provider.status(withdrawal=withdrawal, idempotency_key=key, psp_reference=withdrawal.psp_reference)
    except Exception:
        logger.exception("status call to %s failed for withdrawal %s", withdrawal.provider, withdrawal.pk)
        return None
    seen = f"asked the PSP after a cut-off call on {key}: {answer.status} {answer.psp_status}".strip()
    if answer.incomplete:  # half done (Stripe Connect: transferred, no payout yet): the same key completes it
        logger.warning("withdrawal %s: %s; submitting again with the same key to complete it", withdrawal.pk, seen)
        return None
    if answer.status in (PayoutStatus.PAID, PayoutStatus.PENDING):
        wrong = (answer.amount_u is not None and answer.amount_u != withdrawal.amount_u) or bool(
            answer.currency and answer.currency.upper() != withdrawal.currency.upper()
        )
        if wrong:
            return SubmitResult(
                Outcome.DECLINED,
                answer.psp_reference,
                f"{seen}; its amount {answer.amount_u} {answer.currency} is not ours: manual review",
            )
        return SubmitResult(Outcome.ACCEPTED, answer.psp_reference, f"{seen}; not submitted again")
    if answer.status == PayoutStatus.FAILED:
        return SubmitResult(Outcome.DECLINED, answer.psp_reference, f"{seen}; not submitted again")
    logger.warning("withdrawal %s: %s; submitting again with the same key", withdrawal.pk, seen)
    return None


def _check_provider_health(*, provider: str) -> None:
    """Pause payouts (switch PAYOUT_AUTO_PAUSE) after N consecutive failed calls to one PSP."""
    limit = auto_pause_after_failures()
    if limit <= 0:
        return
    recent = list(
        PayoutAttempt.objects.filter(provider=provider)
        .exclude(outcome=PayoutAttempt.Outcome.PENDING)
        .order_by("-finished_at", "-id")
        .values_list("outcome", flat=True)[:limit]
    )
    failures = (PayoutAttempt.Outcome.AMBIGUOUS, PayoutAttempt.Outcome.ERROR, PayoutAttempt.Outcome.REFUSED)
    if len(recent) < limit or any(outcome not in failures for outcome in recent):
        return
    if switch_is_on(Switch.Name.PAYOUT_AUTO_PAUSE):
        return
    reason = f"{limit} consecutive failed payout calls to {provider}; payouts paused automatically"
    switch_set(name=Switch.Name.PAYOUT_AUTO_PAUSE, on=True, reason=reason, actor=PAYOUT_WORKER)
    logger.error("PAYOUT_AUTO_PAUSE turned on: %s", reason)


def requeue_interval_s() -> float:
    """How often beat runs the requeue (its `payouts-requeue` entry)."""
    schedule = settings.CELERY_BEAT_SCHEDULE.get("payouts-requeue", {}).get("schedule")
    return schedule.total_seconds() if isinstance(schedule, timedelta) else 60.0


def payouts_requeue(*, older_than_s: int | None = None) -> list[int]:
    """Queue the payout worker again for work nobody is doing; return the withdrawal ids queued.

    Picks approved withdrawals (left by a freeze or a lost message) and payout_submitted ones whose
    current attempt has no answer from the PSP (timeouts after the retries ran out), or whose lease was
    left to expire by a holder that died mid-call (at once). A payout whose lease is still held, with no
    answer yet, and ends before the requeue's next run gets a resume scheduled at that expiry
    (`_enqueue_payout_after_lease`: it acts only if the holder never gave the lease back), so a payout
    whose caller died is resumed within about a second of its lease's end. Safe: a resubmission reuses
    the attempt's idempotency key and asks the PSP first, so the PSP pays at most once. Does nothing
    while payouts are paused.
    """
    if payouts_paused():
        return []
    from .selectors import payouts_lease_ending, payouts_waiting

    queued = payouts_waiting(older_than_s=older_than_s)
    for withdrawal_id in queued:
        _enqueue_payout(withdrawal_id)
    if queued:
        logger.warning("payout worker queued again for withdrawals %s", queued)
    for withdrawal_id, owner, left_s in payouts_lease_ending(within_s=requeue_interval_s()):
        _enqueue_payout_after_lease(withdrawal_id, owner, left_s)
        logger.info(
            "withdrawal %s: resume scheduled in %.1f s, if %s never gives its lease back", withdrawal_id, left_s, owner
        )
    return queued


# --- Settlement by webhook -----------------------------------------------------------------


@dataclass(frozen=True)
class PayoutNotice:
    """A verified PSP webhook about a payout, reduced to what we act on."""

    provider: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    outcome: str  # "paid", "failed", or "" (not about a payout's result)
    idempotency_key: str = ""
    psp_reference: str = ""
    detail: str = ""


def _find_withdrawal_id(notice: PayoutNotice) -> tuple[int | None, str]:
    """Return the withdrawal and the attempt key a notice is about (by our key, then the PSP's reference)."""
    attempts = PayoutAttempt.objects.filter(provider=notice.provider)
    if notice.idempotency_key:
        row = attempts.filter(idempotency_key=notice.idempotency_key).values_list("withdrawal_id", flat=True).first()
        if row is not None:
            return row, notice.idempotency_key
    if notice.psp_reference:
        found = (
            attempts.filter(psp_reference=notice.psp_reference)
            .values_list("withdrawal_id", "idempotency_key")
            .order_by("-id")
            .first()
        )
        if found is not None:
            return found[0], found[1]
        withdrawal_id = (
            Withdrawal.objects.filter(provider=notice.provider, psp_reference=notice.psp_reference)
            .values_list("pk", flat=True)
            .first()
        )
        if withdrawal_id is not None:
            return withdrawal_id, ""
    return None, ""


def payout_event_process(*, notice: PayoutNotice) -> tuple[PayoutEvent, bool]:
    """Store a verified webhook once and apply it; return (event, duplicate). A duplicate changes nothing.

    paid: payout_submitted -> paid (burn). failed/returned: payout_submitted -> payout_failed (funds
    stay held). A notice that does not fit the current state is stored and logged for review.
    """
    actor = SystemActor(f"webhook:{notice.provider}")
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = PayoutEvent.objects.create(
                    provider=notice.provider,
                    event_id=notice.event_id,
                    event_type=notice.event_type,
                    payload=notice.payload,
                )
        except IntegrityError:
            return PayoutEvent.objects.get(provider=notice.provider, event_id=notice.event_id), True
        event.result = _apply_notice(notice=notice, event=event, actor=actor)
        event.save(update_fields=["result", "withdrawal"])
    return event, False


def _apply_notice(*, notice: PayoutNotice, event: PayoutEvent, actor: SystemActor) -> str:
    if notice.outcome not in ("paid", "failed"):
        return f"ignored: {notice.event_type} does not settle a payout"
    withdrawal_id, key = _find_withdrawal_id(notice)
    if withdrawal_id is None:
        logger.warning("payout webhook %s:%s matches no withdrawal", notice.provider, notice.event_id)
        return "ignored: no matching withdrawal"
    withdrawal = withdrawal_lock(withdrawal_id=withdrawal_id)
    flow_bind(withdrawal.flow_id)  # the webhook joins the flow of the withdrawal it confirms
    event.withdrawal = withdrawal
    if key and key != withdrawal.idempotency_key:
        logger.error(
            "payout webhook %s about old attempt %s of withdrawal %s (now %s, %s): review",
            notice.event_id,
            key,
            withdrawal.pk,
            withdrawal.idempotency_key,
            withdrawal.state,
        )
        return f"review: about old attempt {key}; withdrawal is {withdrawal.state}"
    if withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED:
        if notice.outcome == "paid" and withdrawal.state == Withdrawal.State.PAID:
            return "already paid"
        if notice.outcome == "failed" and withdrawal.state == Withdrawal.State.PAYOUT_FAILED:
            return "already in manual review"
        logger.error(
            "payout webhook %s says %s but withdrawal %s is %s: review",
            notice.event_id,
            notice.outcome,
            withdrawal.pk,
            withdrawal.state,
        )
        return f"review: PSP says {notice.outcome} but withdrawal is {withdrawal.state}"
    reason = f"{notice.provider} {notice.event_type} {notice.event_id} {notice.detail}".strip()
    if notice.psp_reference and not withdrawal.psp_reference:
        withdrawal.psp_reference = notice.psp_reference
    if notice.outcome == "paid":
        _transition(
            withdrawal=withdrawal, action="mark_paid", actor=actor, reason=reason, data={"event_id": notice.event_id}
        )
        _burn(withdrawal=withdrawal, actor=actor, reason=reason)
        return "paid"
    _transition(
        withdrawal=withdrawal, action="mark_failed", actor=actor, reason=reason, data={"event_id": notice.event_id}
    )
    return "payout_failed"


def payout_event_mark_reviewed(*, event_id: int, acting_user: Actor, reason: str) -> PayoutEvent:
    """Acknowledge a payout webhook that needed review (after acting on it), with a reason, audited."""
    require_operator(acting_user, permission="payouts.resolve_withdrawal", what="review payout events")
    reason = _require_reason(reason)
    with transaction.atomic():
        event = PayoutEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or not event.result.startswith(PayoutEvent.REVIEW_PREFIX):
            raise InvalidWithdrawal(f"Payout event {event_id} does not need review.")
        if event.reviewed_at is not None:
            raise InvalidWithdrawal(f"Payout event {event_id} was already reviewed by {event.reviewed_by}.")
        event.reviewed_at = timezone.now()
        event.reviewed_by = actor_label(acting_user)
        event.save(update_fields=["reviewed_at", "reviewed_by"])
        audit_record(
            actor=acting_user,
            action="payouts.payout_event.reviewed",
            obj=event,
            object_type="payouts.payoutevent",
            reason=reason,
            data={"withdrawal": event.withdrawal_id, "result": event.result},
        )
    return event
