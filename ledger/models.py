"""Accounts with stored balances, journals, and append-only entries (DESIGN.md §3).

Amounts are integers in the currency's minor unit. An entry's positive amount raises its account's
balance. Every journal's entries sum to zero per currency; the database checks that too (a deferred
trigger on PostgreSQL, see migration 0002), and refuses updates and deletes of journals and entries.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from .money import format_money_safe


class Account(models.Model):
    """One balance of one owner in one currency, e.g. `user:<uuid>:available` or `house`."""

    class Kind(models.TextChoices):
        USER_AVAILABLE = "user_available", "User available"
        USER_HELD = "user_held", "User held (withdrawals in flight)"
        ROUND_POOL = "round_pool", "Round pool (stakes of an unsettled round)"
        HOUSE = "house", "House (fees and breakage)"
        EXTERNAL = "external", "PSP / external clearing"

    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=10)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    balance_u = models.BigIntegerField(default=0)
    allow_negative = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "currency"], name="ledger_account_name_currency_unique"),
            models.UniqueConstraint(
                fields=["owner", "currency", "kind"],
                condition=models.Q(owner__isnull=False),
                name="ledger_account_owner_currency_kind_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(allow_negative=True) | models.Q(balance_u__gte=0),
                name="ledger_account_balance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.currency}]"


class Journal(models.Model):
    """One movement of money: a type, a reference unique forever, and two or more entries."""

    type = models.CharField(max_length=50, db_index=True)
    reference = models.CharField(max_length=200, unique=True)
    fingerprint = models.CharField(max_length=64, help_text="Hash of type and legs, to recognise a replay.")
    metadata = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by")
    created_at = models.DateTimeField(db_default=Now(), db_index=True)

    # Not a column: set by `ledger.services` on the journal it returns, True when the reference had already
    # been posted with the same contents (a replay). Unset on a journal loaded any other way.
    replayed: bool

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("post_adjustment", "Can propose or approve a manual ledger adjustment (maker-checker)"),
            ("credit_player", "Can propose or approve an operator credit (maker-checker)"),
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.reference}"


class Entry(models.Model):
    """One signed amount on one account; never updated, never deleted."""

    journal = models.ForeignKey(Journal, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    currency = models.CharField(max_length=10)
    amount_u = models.BigIntegerField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "entries"
        indexes = [models.Index(fields=["account", "id"], name="ledger_entry_account_id")]
        constraints = [models.CheckConstraint(condition=~models.Q(amount_u=0), name="ledger_entry_amount_nonzero")]

    def __str__(self) -> str:
        """The admin's title and links: the signed amount as every money column writes it (`ledger.money`)."""
        return f"{self.account_id} {'+' if self.amount_u > 0 else ''}{format_money_safe(self.amount_u, self.currency)}"


class ReconciliationRun(models.Model):
    """One run of the invariant checks, with what it found."""

    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    breach_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"reconciliation run {self.pk} ({'ok' if self.ok else f'{self.breach_count} breaches'})"


class LedgerBreach(models.Model):
    """One invariant found broken by a reconciliation run (counted by `ledger_imbalance_total`)."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="breaches")
    invariant = models.CharField(max_length=100)
    currency = models.CharField(max_length=10)
    detail = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.currency}: {self.detail}"


class PostingLeg(models.Model):
    """A leg staged for one posting: the caller's rows, consumed by `ledger_post_staged` in the same transaction.

    The door for postings with more legs than belong in Python (a round's payouts): the caller fills this
    table with its own set-based `INSERT ... SELECT` (`ledger.services.posting_legs_stage` for a few legs
    from Python), then `ledger.services.journal_post_staged` posts the rows of one reference and deletes
    them, whatever it answers. Only rows the current transaction staged count (`created_txid`, a column only
    the database knows, migration 0008): rows staged by a committed transaction are deleted, never posted.
    UNLOGGED: its rows never outlive a transaction, so they need no crash safety. No foreign key: an unknown
    account is the posting function's refusal, not a constraint error at commit.
    """

    posting_reference = models.CharField(max_length=200)
    account_id = models.BigIntegerField()
    amount_u = models.BigIntegerField()

    class Meta:
        db_table = "ledger_posting_leg"
        indexes = [models.Index(fields=["posting_reference"], name="ledger_posting_leg_reference")]

    def __str__(self) -> str:
        return f"{self.posting_reference}: {self.account_id} {self.amount_u:+d}"
