"""Withdrawals and their payouts: a protected state machine, PSP attempts, webhook events, approvals.

No code path sets `Withdrawal.state` directly: the field is protected and only the transition
methods below change it, and only `payouts.services` calls them (inside a locked transaction that
also moves the money and writes the audit record).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from ledger.money import format_money_safe
from ops.tracing import flow_id_new

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser, PermissionsMixin

    # What django-fsm passes to a permission callable (its `UserWithPermissions`).
    _FsmUser = AbstractUser | AnonymousUser | PermissionsMixin


def withdrawal_flow_id() -> str:
    """A new withdrawal's flow id."""
    return flow_id_new("wd")


def _system_only(instance: models.Model, user: _FsmUser) -> bool:
    """Transitions driven by the payout worker or a PSP webhook; no person may fire them."""
    return False


def _owner_only(instance: models.Model, user: _FsmUser) -> bool:
    """Only the player who asked for the withdrawal may cancel it."""
    return isinstance(instance, Withdrawal) and user is not None and user.pk == instance.user_id


class Withdrawal(ConcurrentTransitionMixin, models.Model):
    """A player's request to take money out: held at request, burned when paid, released otherwise."""

    class State(models.TextChoices):
        REQUESTED = "requested", "Requested (funds held)"
        APPROVED = "approved", "Approved (waiting for the payout worker)"
        PAYOUT_SUBMITTED = "payout_submitted", "Payout submitted to the PSP"
        PAID = "paid", "Paid"
        PAYOUT_FAILED = "payout_failed", "Payout failed (manual review)"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled by the player"
        REFUNDED = "refunded", "Refunded after a failed payout"

    HELD_STATES = (State.REQUESTED, State.APPROVED, State.PAYOUT_SUBMITTED, State.PAYOUT_FAILED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals")
    amount_u = models.BigIntegerField(help_text="Minor units of the currency.")
    currency = models.CharField(max_length=10)
    provider = models.CharField(max_length=30, help_text="The payout rail, e.g. adyen or stripe.")
    destination = models.JSONField(default=dict, blank=True)
    state = FSMField(default=State.REQUESTED, choices=State.choices, protected=True, db_index=True)
    payout_generation = models.PositiveIntegerField(
        default=0, help_text="Incremented at each new payout attempt (first submit, manual retry)."
    )
    psp_reference = models.CharField(max_length=100, blank=True, db_index=True)
    payout_lease_owner = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Who is calling the PSP about this payout now (payouts/leases.py); empty when nobody is.",
    )
    payout_lease_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Until when that call may still be running (database clock); another caller waits until then.",
    )
    created_at = models.DateTimeField(db_default=Now(), db_index=True)
    state_changed_at = models.DateTimeField(db_default=Now())
    flow_id = models.CharField(
        max_length=200,
        unique=True,
        editable=False,
        default=withdrawal_flow_id,
        help_text="The money flow this record starts: on its spans, logs, tasks and PSP calls (ops/tracing.py).",
    )

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("approve_withdrawal", "Can approve a withdrawal"),
            ("reject_withdrawal", "Can reject a withdrawal"),
            ("resolve_withdrawal", "Can resolve a failed payout (confirm sent / refund)"),
            ("retry_payout", "Can retry a failed payout"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_u__gt=0), name="payouts_withdrawal_amount_positive"),
        ]

    def __str__(self) -> str:
        """The admin's title and links: the amount as every money column writes it (`ledger.money`)."""
        return f"withdrawal #{self.pk} {format_money_safe(self.amount_u, self.currency)} ({self.state})"

    @property
    def idempotency_key(self) -> str:
        """The PSP idempotency key of the current payout attempt (our id plus the attempt number)."""
        return f"wd-{self.pk}-{self.payout_generation}"

    # Transitions: bodies are empty on purpose; the services move the money around them.

    @transition(
        field=state,
        source=State.REQUESTED,
        target=State.APPROVED,
        permission="payouts.approve_withdrawal",
        custom={"label": "Approve"},
    )
    def approve(self) -> None:
        """An operator approved the withdrawal; no money moves."""

    @transition(
        field=state,
        source=State.REQUESTED,
        target=State.REJECTED,
        permission="payouts.reject_withdrawal",
        custom={"label": "Reject"},
    )
    def reject(self) -> None:
        """An operator rejected the withdrawal; the held funds are released."""

    @transition(
        field=state, source=State.REQUESTED, target=State.CANCELLED, permission=_owner_only, custom={"label": "Cancel"}
    )
    def cancel(self) -> None:
        """The player cancelled before approval; the held funds are released."""

    @transition(field=state, source=State.APPROVED, target=State.PAYOUT_SUBMITTED, permission=_system_only)
    def submit(self) -> None:
        """The payout worker is about to call the PSP."""

    @transition(field=state, source=State.PAYOUT_SUBMITTED, target=State.PAID, permission=_system_only)
    def mark_paid(self) -> None:
        """The PSP confirmed the payout; the held funds are burned."""

    @transition(field=state, source=State.PAYOUT_SUBMITTED, target=State.PAYOUT_FAILED, permission=_system_only)
    def mark_failed(self) -> None:
        """The PSP declined or reported a failure; funds stay held for manual review."""

    # From payout_submitted only once the PSP has been asked (see payouts.reconciliation.resolution_blocker).
    @transition(
        field=state,
        source=[State.PAYOUT_FAILED, State.PAYOUT_SUBMITTED],
        target=State.PAID,
        permission="payouts.resolve_withdrawal",
        custom={"label": "Confirm sent"},
    )
    def confirm_sent(self) -> None:
        """Manual review: the money did leave; the held funds are burned."""

    @transition(
        field=state,
        source=[State.PAYOUT_FAILED, State.PAYOUT_SUBMITTED],
        target=State.REFUNDED,
        permission="payouts.resolve_withdrawal",
        custom={"label": "Refund"},
    )
    def refund_failed(self) -> None:
        """Manual review: the payout definitely failed; the held funds are released."""

    @transition(
        field=state,
        source=State.PAYOUT_FAILED,
        target=State.PAYOUT_SUBMITTED,
        permission="payouts.retry_payout",
        custom={"label": "Retry payout"},
    )
    def retry(self) -> None:
        """Manual review: submit a new payout attempt (a new PSP idempotency key)."""


class ManualReviewWithdrawal(Withdrawal):
    """The manual-review queue in the admin: withdrawals whose payout failed."""

    class Meta:
        proxy = True
        verbose_name = "withdrawal in manual review"
        verbose_name_plural = "manual review queue"


class PayoutAttempt(models.Model):
    """One call to a PSP for a withdrawal; calls sharing an idempotency key are one payout at the PSP."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending (call in flight or interrupted)"
        ACCEPTED = "accepted", "Accepted by the PSP"
        DECLINED = "declined", "Declined by the PSP"
        AMBIGUOUS = "ambiguous", "Ambiguous (timeout: may or may not have happened)"
        ERROR = "error", "Transient error (nothing happened)"
        REFUSED = "refused", "Refused before reaching a result (configuration or request error)"

    FAILURES = (Outcome.AMBIGUOUS, Outcome.ERROR)

    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="attempts")
    provider = models.CharField(max_length=30, db_index=True)
    idempotency_key = models.CharField(max_length=100, db_index=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    psp_reference = models.CharField(max_length=100, blank=True, db_index=True)
    detail = models.TextField(blank=True)
    lease_owner = models.CharField(max_length=200, blank=True, default="", help_text="The caller that held the lease.")
    took_over_from = models.CharField(
        max_length=200, blank=True, default="", help_text="The expired lease this call took over (a dead worker's)."
    )
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.idempotency_key} {self.outcome}"


class PayoutEvent(models.Model):
    """A PSP webhook about a payout, stored once per provider and event id."""

    provider = models.CharField(max_length=30)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    withdrawal = models.ForeignKey(Withdrawal, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    result = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(db_default=Now())
    reviewed_at = models.DateTimeField(
        null=True, blank=True, help_text="When an operator acknowledged a result that needed review."
    )
    reviewed_by = models.CharField(max_length=150, blank=True)

    REVIEW_PREFIX = "review:"  # results that say the PSP and our state disagree; an operator must look

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="payouts_event_once_per_provider"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id} {self.event_type}"


class PayoutStatusCheck(models.Model):
    """One time we asked the PSP what became of a payout attempt, and what it answered (the evidence)."""

    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="status_checks")
    provider = models.CharField(max_length=30)
    idempotency_key = models.CharField(max_length=100, db_index=True)
    answer = models.CharField(max_length=20, help_text="paid, failed, pending, not_found, unknown or error.")
    psp_reference = models.CharField(max_length=100, blank=True)
    psp_status = models.CharField(max_length=50, blank=True)
    detail = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=100, blank=True, help_text="What reconciliation did with the answer.")
    checked_at = models.DateTimeField(db_default=Now())

    ANSWERED = ("paid", "failed", "pending", "not_found", "unknown")  # the PSP answered (error: we could not ask)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.idempotency_key} {self.answer} ({self.action})"
