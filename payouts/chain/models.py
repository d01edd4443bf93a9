"""On-chain records: the hot wallet's nonces, signed payout transactions, deposit addresses and deposits.

Never send twice: a payout transaction is signed and stored (nonce, raw bytes, hash) before it is
broadcast; every later broadcast sends those same bytes. Deposits are keyed by (transaction hash,
log index) and credited at most once. No private key is ever stored here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class HotWallet(models.Model):
    """The payout wallet's next nonce, allocated under a row lock so two workers never share one."""

    address = models.CharField(max_length=42, unique=True)
    chain_id = models.BigIntegerField()
    next_nonce = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.address} (chain {self.chain_id}, next nonce {self.next_nonce})"


class ChainTransfer(models.Model):
    """One signed ERC-20 `transfer` for a payout attempt; replacements share its nonce (seq > 0)."""

    class Status(models.TextChoices):
        SIGNED = "signed", "Signed and recorded, not yet known to be broadcast"
        BROADCAST = "broadcast", "Broadcast, not yet mined"
        MINED = "mined", "Mined, waiting for confirmations"
        CONFIRMED = "confirmed", "Confirmed (paid)"
        REVERTED = "reverted", "Reverted or wrong transfer (manual review)"
        DROPPED = "dropped", "Dropped: another transaction took its nonce"

    OPEN = (Status.SIGNED, Status.BROADCAST, Status.MINED)

    withdrawal = models.ForeignKey("payouts.Withdrawal", on_delete=models.PROTECT, related_name="chain_transfers")
    idempotency_key = models.CharField(max_length=100, db_index=True, help_text="The payout attempt's key.")
    seq = models.PositiveIntegerField(default=0, help_text="0 = original; 1, 2, ... = operator replacements.")
    chain_id = models.BigIntegerField()
    from_address = models.CharField(max_length=42)
    token_address = models.CharField(max_length=42)
    to_address = models.CharField(max_length=42)
    amount_u = models.BigIntegerField()
    nonce = models.BigIntegerField()
    gas_limit = models.BigIntegerField()
    max_fee_per_gas = models.DecimalField(max_digits=40, decimal_places=0)
    max_priority_fee_per_gas = models.DecimalField(max_digits=40, decimal_places=0)
    raw_tx = models.TextField(help_text="The signed transaction (hex); every broadcast sends exactly these bytes.")
    tx_hash = models.CharField(max_length=66, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SIGNED, db_index=True)
    broadcast_count = models.PositiveIntegerField(default=0)
    first_broadcast_at = models.DateTimeField(null=True, blank=True)
    last_broadcast_at = models.DateTimeField(null=True, blank=True)
    block_number = models.BigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    evidence = models.JSONField(default=list, blank=True, help_text="What the chain said, in order.")
    review_reason = models.TextField(blank=True, help_text="Set when an operator must look (e.g. reorg after paid).")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.CharField(max_length=150, blank=True)
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(db_default=Now(), db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["from_address", "nonce", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain_id", "from_address", "nonce", "seq"], name="chain_transfer_nonce_once"
            ),
            models.UniqueConstraint(fields=["idempotency_key", "seq"], name="chain_transfer_key_once"),
            models.CheckConstraint(condition=models.Q(amount_u__gt=0), name="chain_transfer_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.tx_hash} nonce {self.nonce} ({self.status})"


class DepositAddress(models.Model):
    """A player's deposit address, derived from the configured xpub at `m/<index>` (no private key here)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="chain_deposit_address"
    )
    xpub_fingerprint = models.CharField(max_length=16, help_text="Which xpub the address was derived from.")
    index = models.BigIntegerField()
    address = models.CharField(max_length=42, unique=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["xpub_fingerprint", "index"], name="chain_deposit_address_index_once"),
        ]

    def __str__(self) -> str:
        return f"{self.address} (m/{self.index})"


class ChainDeposit(models.Model):
    """A token `Transfer` to a deposit address, keyed by (transaction hash, log index), credited once."""

    class Status(models.TextChoices):
        SEEN = "seen", "Seen, waiting for confirmations"
        CREDITED = "credited", "Credited"
        ORPHANED = "orphaned", "Reorganised away before confirmation (nothing credited)"

    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    chain_id = models.BigIntegerField()
    token_address = models.CharField(max_length=42)
    from_address = models.CharField(max_length=42)
    to_address = models.CharField(max_length=42, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="chain_deposits")
    amount_u = models.BigIntegerField()
    currency = models.CharField(max_length=10, default="USDC")
    block_number = models.BigIntegerField()
    block_hash = models.CharField(max_length=66)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SEEN, db_index=True)
    journal = models.OneToOneField("ledger.Journal", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    evidence = models.JSONField(default=list, blank=True)
    review_reason = models.TextField(blank=True, help_text="Set when a credited deposit left the chain.")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.CharField(max_length=150, blank=True)
    seen_at = models.DateTimeField(db_default=Now())
    credited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["block_number", "log_index"]
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "tx_hash", "log_index"], name="chain_deposit_log_once"),
            models.CheckConstraint(condition=models.Q(amount_u__gt=0), name="chain_deposit_amount_positive"),
            models.CheckConstraint(
                condition=~models.Q(status="credited") | models.Q(journal__isnull=False),
                name="chain_deposit_credited_has_journal",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tx_hash}:{self.log_index} {self.amount_u} ({self.status})"


class ChainCursor(models.Model):
    """How far a watcher has processed a chain: every block up to `last_block` is final for it."""

    name = models.CharField(max_length=50, unique=True)
    last_block = models.BigIntegerField()
    last_block_hash = models.CharField(max_length=66, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at block {self.last_block}"
