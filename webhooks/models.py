"""Deposits and the raw PSP webhook events that confirm them (DESIGN.md §5).

A `Deposit` is created pending when a player starts paying (or when a custody deposit arrives) and
is credited at most once, by the processing of a verified `WebhookEvent`. Every event is stored raw
before anything else happens, unique per (provider, event id), so a duplicate delivery is recognised.
Amounts are integers in the currency's minor unit.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from ledger.money import format_money_safe
from ops.tracing import flow_id_new


class Provider(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    ADYEN = "adyen", "Adyen"
    CUSTODY = "custody", "Custody / on-chain"
    SIMULATION = "simulation", "Simulation (development only)"


def deposit_flow_id() -> str:
    """A new deposit's flow id."""
    return flow_id_new("dep")


class Deposit(models.Model):
    """Money a player is paying in through one provider; credited once, when the provider confirms."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (waiting for the provider's confirmation)"
        CREDITED = "credited", "Credited"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    reference = models.CharField(
        max_length=150, help_text="Our reference sent to the PSP (a UUID), or the custody deposit's reference."
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposits")
    amount_u = models.BigIntegerField()
    currency = models.CharField(max_length=10)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    psp_id = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="Stripe PaymentIntent id or Adyen session id."
    )
    psp_payment_reference = models.CharField(
        max_length=150, blank=True, db_index=True, help_text="The PSP's reference of the confirmed payment."
    )
    psp_client_data = models.JSONField(default=dict, blank=True, help_text="What the client needs to pay.")
    failure_reason = models.TextField(blank=True)
    journal = models.OneToOneField(
        "ledger.Journal",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The credit journal (one journal credits at most one deposit).",
    )
    refunded_u = models.BigIntegerField(default=0, help_text="Refunds debited from the player so far.")
    charged_back_u = models.BigIntegerField(default=0, help_text="Chargebacks debited from the player so far.")
    created_at = models.DateTimeField(db_default=Now())
    credited_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    flow_id = models.CharField(
        max_length=200,
        unique=True,
        editable=False,
        default=deposit_flow_id,
        help_text="The money flow this record starts: on its spans, logs, tasks and PSP calls (ops/tracing.py).",
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "reference"], name="webhooks_deposit_provider_reference"),
            models.CheckConstraint(condition=models.Q(amount_u__gt=0), name="webhooks_deposit_amount_positive"),
            models.CheckConstraint(
                condition=~models.Q(status="credited") | models.Q(journal__isnull=False),
                name="webhooks_deposit_credited_has_journal",
            ),
        ]

    def __str__(self) -> str:
        """The admin's title and links: the amount as every money column writes it (`ledger.money`)."""
        return f"{self.provider}:{self.reference} {format_money_safe(self.amount_u, self.currency)} ({self.status})"


class WebhookEvent(models.Model):
    """One verified PSP notification, stored raw, processed at most once to a final status."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received (waiting for processing)"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (event type not handled)"
        FLAGGED = "flagged", "Flagged for an operator"
        FAILED = "failed", "Failed (retries exhausted)"

    provider = models.CharField(max_length=20, choices=Provider.choices)
    event_id = models.CharField(max_length=200, help_text="The PSP's event id (custody: the deposit reference).")
    event_type = models.CharField(max_length=100, blank=True)
    reference = models.CharField(max_length=200, blank=True, db_index=True, help_text="The PSP payment reference.")
    payload_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON payload.")
    payload = models.JSONField()
    raw_body = models.TextField(blank=True, help_text="The exact body delivered (for Adyen: the whole notification).")
    headers = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(db_default=Now(), db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    reason = models.TextField(blank=True, help_text="Why it was flagged or ignored, or what processing did.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    deposit = models.ForeignKey(Deposit, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    journal_reference = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhooks_event_provider_event_id"),
        ]
        permissions = [("replay_webhookevent", "Can replay a stored webhook event")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id} ({self.status})"
