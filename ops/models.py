"""Operational records: business audit trail, idempotency keys, and switches."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditRecord(models.Model):
    """An append-only record of one business action: who, what, why, from which state to which."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="The user's email, or the system job's name.")
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100)
    reason = models.TextField(blank=True)
    from_state = models.CharField(max_length=50, blank=True)
    to_state = models.CharField(max_length=50, blank=True)
    data = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "audit_log"
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"
        )


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` of one caller, with the request's hash and the stored response."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    scope = models.CharField(max_length=200, help_text="Method and route of the request.")
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=20, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} ({self.state})"


class Switch(models.Model):
    """An operator switch: maintenance mode, payout freeze, betting pause."""

    class Name(models.TextChoices):
        MAINTENANCE = "maintenance", "Maintenance mode (API refuses writes)"
        PAYOUT_FREEZE = "payout_freeze", "Payout freeze (no payout is submitted)"
        BETTING_PAUSED = "betting_paused", "Betting paused (no bet is accepted)"
        PAYOUT_AUTO_PAUSE = "payout_auto_pause", "Payouts paused automatically after PSP failures"

    name = models.CharField(max_length=50, choices=Name.choices, unique=True)
    on = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.CharField(max_length=150, blank=True)
    tripped_by = models.CharField(
        max_length=500,
        blank=True,
        help_text="The invariants whose failure turned this switch on automatically; while set, clearing it "
        "takes two operators (maker-checker).",
    )

    class Meta:
        verbose_name_plural = "switches"

    def __str__(self) -> str:
        return f"{self.name}={'on' if self.on else 'off'}"


class Waiver(models.Model):
    """A risk accepted for a time (the go-live waiver register), with a deadline and escalation."""

    class Risk(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    check_name = models.CharField(max_length=100, help_text="The verify_prod_env check this waives.")
    ticket = models.CharField(max_length=100)
    risk = models.CharField(max_length=10, choices=Risk.choices)
    owner = models.CharField(max_length=150)
    reason = models.TextField()
    deadline = models.DateTimeField()
    escalated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.check_name} ({self.risk}, until {self.deadline:%Y-%m-%d})"


class WorkerRun(models.Model):
    """One run of a background worker (payout, reconciliation, stuck-jobs, rounds...): `worker_runs_total`."""

    class Result(models.TextChoices):
        OK = "ok"
        FAILED = "failed"

    worker = models.CharField(max_length=50, db_index=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.worker} {self.result} at {self.finished_at:%Y-%m-%d %H:%M:%S}"


class Proposal(models.Model):
    """A manual money decision under maker-checker: one operator proposes, a different one approves.

    One mechanism for every kind (withdrawal approval, manual payout resolution, ledger adjustment,
    forced round result, operator credit): see `ops.approvals`. Below its currency's threshold a
    decision needs one operator and is applied when proposed; the row records it all the same.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending (awaiting a second operator)"
        APPLIED = "applied", "Applied"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled (its subject moved on)"

    kind = models.CharField(max_length=50, db_index=True)
    subject = models.CharField(max_length=100, help_text="What it decides on, e.g. payouts.withdrawal:12.")
    payload = models.JSONField(default=dict, blank=True)
    amounts = models.JSONField(default=dict, blank=True, help_text='Money at stake per currency: {"USD": 1000}.')
    parties = models.JSONField(default=list, blank=True, help_text="Ids of the users whose money it moves.")
    needs_second_operator = models.BooleanField(default=True)
    reason = models.TextField()
    evidence = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=models.Q(state="pending"),
                name="ops_proposal_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"proposal {self.pk} {self.kind} {self.subject} ({self.state})"
