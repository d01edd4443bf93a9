"""Reads for withdrawals: a player's own, the manual-review queue, a withdrawal's money and audit trail,
and the stuck-job detector's findings about withdrawals and payout events (sources of `ops.stuck`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    BooleanField,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
)
from django.db.models.functions import Now
from django.utils import timezone

from ledger.models import Entry, Journal
from ops.models import AuditRecord, Proposal
from ops.stuck import StuckFinding, age_limit_s, register_stuck_source

from .errors import WithdrawalNotFound
from .models import PayoutAttempt, PayoutEvent, Withdrawal

logger = logging.getLogger(__name__)


def withdrawal_list(*, user: Any) -> QuerySet[Withdrawal]:
    """Return the player's own withdrawals, newest first."""
    return Withdrawal.objects.filter(user=user).order_by("-id")


def withdrawal_get(*, user: Any, withdrawal_id: Any) -> Withdrawal:
    """Return one of the player's own withdrawals; another player's is simply not found."""
    try:
        return Withdrawal.objects.get(pk=int(withdrawal_id), user=user)
    except (Withdrawal.DoesNotExist, ValueError, TypeError):
        raise WithdrawalNotFound(f"No withdrawal {withdrawal_id}.") from None


def withdrawal_get_for_staff(*, withdrawal_id: Any) -> Withdrawal:
    """Return any withdrawal (operators)."""
    try:
        return Withdrawal.objects.select_related("user").get(pk=int(withdrawal_id))
    except (Withdrawal.DoesNotExist, ValueError, TypeError):
        raise WithdrawalNotFound(f"No withdrawal {withdrawal_id}.") from None


def manual_review_queue() -> QuerySet[Withdrawal]:
    """Return withdrawals whose payout failed, oldest failure first."""
    return (
        Withdrawal.objects.filter(state=Withdrawal.State.PAYOUT_FAILED)
        .select_related("user")
        .order_by("state_changed_at", "id")
    )


def withdrawal_journals(*, withdrawal: Withdrawal) -> QuerySet[Journal]:
    """Return the ledger journals of a withdrawal (hold, payout, release)."""
    return Journal.objects.filter(reference__startswith=f"withdrawal:{withdrawal.pk}:").order_by("id")


def withdrawal_entries(*, withdrawal: Withdrawal) -> QuerySet[Entry]:
    """Return the ledger entries of a withdrawal's journals."""
    return (
        Entry.objects.filter(journal__reference__startswith=f"withdrawal:{withdrawal.pk}:")
        .select_related("journal", "account")
        .order_by("id")
    )


def withdrawal_audit_trail(*, withdrawal: Withdrawal) -> QuerySet[AuditRecord]:
    """Return the business audit records of a withdrawal, oldest first."""
    return AuditRecord.objects.filter(object_type="payouts.withdrawal", object_id=str(withdrawal.pk)).order_by("id")


def withdrawal_attempts(*, withdrawal: Withdrawal) -> QuerySet[PayoutAttempt]:
    """Return every PSP call made for a withdrawal."""
    return PayoutAttempt.objects.filter(withdrawal=withdrawal).order_by("id")


def withdrawal_subject(withdrawal_id: int) -> str:
    """The maker-checker subject of a withdrawal's decisions."""
    return f"payouts.withdrawal:{withdrawal_id}"


def withdrawal_pending_signoffs(*, withdrawal: Withdrawal) -> list[dict[str, Any]]:
    """Return the decisions proposed on this withdrawal that await a second operator."""
    rows = Proposal.objects.filter(
        subject=withdrawal_subject(withdrawal.pk), state=Proposal.State.PENDING
    ).select_related("proposed_by")
    return [
        {
            "proposal_id": p.pk,
            "action": p.payload.get("decision", "approve"),
            "operator": p.proposed_by.email,
            "reason": p.reason,
            "at": p.created_at,
        }
        for p in rows
    ]


def payouts_waiting(*, older_than_s: int | None = None) -> list[int]:
    """Return ids of payouts nobody is working on: approved, or submitted with no PSP answer and no call lately.

    A lease left to expire by its holder (payouts/leases.py: it claimed, never released, so it died mid-call)
    is work at once, whatever the age: nobody else will come back to it.
    """
    if older_than_s is None:
        older_than_s = int(settings.PAYOUT_REQUEUE_AFTER_S)
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    answered = (PayoutAttempt.Outcome.ACCEPTED, PayoutAttempt.Outcome.DECLINED, PayoutAttempt.Outcome.REFUSED)
    left_by_dead_holder = Q(payout_lease_until__lte=Now()) & ~Q(payout_lease_owner="")
    ids = []
    for withdrawal in (
        Withdrawal.objects.filter(state__in=[Withdrawal.State.APPROVED, Withdrawal.State.PAYOUT_SUBMITTED])
        .filter(Q(state_changed_at__lte=cutoff) | left_by_dead_holder)
        .exclude(payout_lease_until__gt=Now())  # a PSP call in flight (payouts/leases.py); an expired lease is work
        .annotate(abandoned=ExpressionWrapper(left_by_dead_holder, output_field=BooleanField()))
        .order_by("id")
    ):
        if withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED and (
            withdrawal.attempts.filter(idempotency_key=withdrawal.idempotency_key, outcome__in=answered).exists()
            or (
                not withdrawal.abandoned
                and withdrawal.attempts.filter(started_at__gt=cutoff).exists()  # a call or retry in progress
            )
        ):
            continue
        ids.append(withdrawal.pk)
    return ids


def payouts_lease_ending(*, within_s: float) -> list[tuple[int, str, float]]:
    """Submitted payouts with no PSP answer whose lease is held and ends within `within_s` seconds.

    Returns (withdrawal id, the lease's holder, seconds left by the database's clock): the requeue schedules
    a resume at that expiry, in case the holder died mid-call (payouts.services.payouts_requeue).
    """
    answered = (PayoutAttempt.Outcome.ACCEPTED, PayoutAttempt.Outcome.DECLINED, PayoutAttempt.Outcome.REFUSED)
    ending = []
    for withdrawal in (
        Withdrawal.objects.filter(
            state=Withdrawal.State.PAYOUT_SUBMITTED,
            payout_lease_until__gt=Now(),
            payout_lease_until__lte=ExpressionWrapper(
                Now() + timedelta(seconds=within_s), output_field=DateTimeField()
            ),
        )
        .exclude(payout_lease_owner="")
        .annotate(left=ExpressionWrapper(F("payout_lease_until") - Now(), output_field=DurationField()))
        .order_by("id")
    ):
        if withdrawal.attempts.filter(idempotency_key=withdrawal.idempotency_key, outcome__in=answered).exists():
            continue  # answered: the reconciler's status call holds it, not a submission
        left = withdrawal.left.total_seconds()
        ending.append((withdrawal.pk, withdrawal.payout_lease_owner, max(0.0, left)))
    return ending


# --- Stuck work ----------------------------------------------------------------------------

# Age limits in minutes (settings): a payout in flight with no PSP answer and an approved payout not submitted
# are stuck within minutes; the PSP's confirmation of an accepted payout may take a banking day
# (reconcile_payouts asks the PSP well before that). Webhook events and rounds have theirs in their apps.
STUCK_LIMIT_SETTINGS = {
    "requested": "STUCK_REQUESTED_AFTER_MINUTES",
    "approved": "STUCK_APPROVED_AFTER_MINUTES",
    "in_flight": "STUCK_IN_FLIGHT_AFTER_MINUTES",
    "unconfirmed": "STUCK_UNCONFIRMED_AFTER_MINUTES",
}


def stuck_limit_s(kind: str) -> int:
    """Return the age in seconds after which a withdrawal in `kind` counts as stuck (setting in minutes)."""
    return age_limit_s(STUCK_LIMIT_SETTINGS[kind])


def _withdrawal_finding(w: Withdrawal, *, now: datetime, limit_s: int, state: str, detail: str = "") -> StuckFinding:
    return StuckFinding(
        kind="withdrawal",
        id=str(w.pk),
        state=state,
        age_s=int((now - w.state_changed_at).total_seconds()),
        limit_s=limit_s,
        detail=f"amount_u={w.amount_u} {w.currency} provider={w.provider} user={w.user.email}"
        + (f" psp_reference={w.psp_reference}" if w.psp_reference else "")
        + (f" {detail}" if detail else ""),
    )


@register_stuck_source("withdrawals", order=10)
def stuck_withdrawals(*, now: datetime | None = None) -> list[StuckFinding]:
    """Return withdrawals waiting past their limits.

    requested (no operator decision), approved (not submitted), payout_submitted with no answer from the PSP
    for the current attempt (in flight: a killed worker, a timeout), and payout_submitted accepted by the PSP
    but never confirmed.
    """
    now = now or timezone.now()
    findings = []
    for state in ("requested", "approved"):
        limit_s = stuck_limit_s(state)
        rows = (
            Withdrawal.objects.filter(state=state, state_changed_at__lt=now - timedelta(seconds=limit_s))
            .select_related("user")
            .order_by("state_changed_at", "id")
        )
        findings += [_withdrawal_finding(w, now=now, limit_s=limit_s, state=state) for w in rows]
    in_flight_s, unconfirmed_s = stuck_limit_s("in_flight"), stuck_limit_s("unconfirmed")
    answered = (PayoutAttempt.Outcome.ACCEPTED, PayoutAttempt.Outcome.DECLINED, PayoutAttempt.Outcome.REFUSED)
    rows = (
        Withdrawal.objects.filter(
            state=Withdrawal.State.PAYOUT_SUBMITTED,
            state_changed_at__lt=now - timedelta(seconds=min(in_flight_s, unconfirmed_s)),
        )
        .select_related("user")
        .order_by("state_changed_at", "id")
    )
    for w in rows:
        age_s = (now - w.state_changed_at).total_seconds()
        accepted = w.attempts.filter(idempotency_key=w.idempotency_key, outcome__in=answered).exists()
        if not accepted and age_s > in_flight_s:
            findings.append(
                _withdrawal_finding(
                    w,
                    now=now,
                    limit_s=in_flight_s,
                    state="payout_submitted",
                    detail="in flight: no answer from the PSP",
                )
            )
        elif accepted and age_s > unconfirmed_s:
            findings.append(
                _withdrawal_finding(
                    w,
                    now=now,
                    limit_s=unconfirmed_s,
                    state="payout_submitted",
                    detail="accepted by the PSP, never confirmed",
                )
            )
    return findings


@register_stuck_source("payout_events", order=30)
def payout_events_needing_review(*, now: datetime | None = None) -> list[StuckFinding]:
    """Return payout webhooks whose PSP outcome disagrees with our state (e.g. paid after a refund), unacknowledged."""
    now = now or timezone.now()
    rows = PayoutEvent.objects.filter(result__startswith=PayoutEvent.REVIEW_PREFIX, reviewed_at__isnull=True).order_by(
        "received_at"
    )
    return [
        StuckFinding(
            kind="payout_event",
            id=str(event.pk),
            state="needs_review",
            age_s=int((now - event.received_at).total_seconds()),
            limit_s=0,
            detail=f"withdrawal={event.withdrawal_id} {event.provider}:{event.event_id} {event.result}",
        )
        for event in rows
    ]


def withdrawal_destination_label(withdrawal: Withdrawal) -> str:
    """Where a withdrawal is paid, in one line for operators (its rail's `destination_label`)."""
    from .errors import UnknownProvider
    from .providers import get_provider

    try:
        rail = get_provider(withdrawal.provider)
    except UnknownProvider:
        return f"unknown rail {withdrawal.provider!r}"
    return rail.destination_label(withdrawal.destination)
