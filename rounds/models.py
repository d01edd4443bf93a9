"""Rounds, bets and oracle observations (DESIGN.md §7); forced results are `ops.Proposal`s.

No code path sets `Round.status` by hand: the services (`rounds.services`, `rounds.settlement`) change it
only with conditional UPDATEs (`WHERE status = <expected>`) inside the transaction that holds the round's row lock and moves the
money. Every amount is an integer in the round currency's minor unit; prices are canonical decimal
strings (see `rounds.domain.commitment.format_price`), never floats.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Length, Now
from django.db.models.lookups import Exact

from ledger.money import format_money_safe
from ops.tracing import flow_id_new
from rounds.domain.pool import Result, Side, VoidReason


def bet_flow_id() -> str:
    """A new bet's flow id."""
    return flow_id_new("bet")


class Round(models.Model):
    """One daily Up/Down round on one XNYS session (`code` = the session date, YYYYMMDD)."""

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open (taking bets)"
        LOCKED = "LOCKED", "Locked (waiting for the close)"
        SETTLED = "SETTLED", "Settled (winners paid)"
        VOID = "VOID", "Void (stakes refunded)"

    UNSETTLED = (Status.OPEN, Status.LOCKED)
    FINISHED = (Status.SETTLED, Status.VOID)

    code = models.CharField(max_length=8, unique=True)
    instrument = models.CharField(max_length=50)
    currency = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, editable=False, db_index=True)
    pool_account = models.OneToOneField(
        "ledger.Account", on_delete=models.PROTECT, related_name="round", editable=False
    )
    # Instants (UTC) from the XNYS calendar.
    open_at = models.DateTimeField()
    lock_at = models.DateTimeField()
    close_at = models.DateTimeField()
    settle_after = models.DateTimeField()
    # Committed parameters.
    fee_bps = models.PositiveIntegerField()
    min_stake_u = models.BigIntegerField()
    reference_close = models.CharField(max_length=40, help_text="Previous session's official close.")
    reference_session = models.DateField()
    rules_version = models.CharField(max_length=50)
    previous_commit = models.CharField(max_length=64, null=True, blank=True)
    commit = models.CharField(max_length=64, unique=True)
    salt = models.CharField(max_length=64, help_text="Secret until settlement; revealed in `reveal`.")
    # Lock.
    merkle_root = models.CharField(max_length=64, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    # Pools, stored when the round locks (`rounds.pools.pools_fold`); while OPEN, summed over its PoolStripe rows.
    up_pool_u = models.BigIntegerField(default=0)
    down_pool_u = models.BigIntegerField(default=0)
    up_bets = models.PositiveIntegerField(default=0)
    down_bets = models.PositiveIntegerField(default=0)
    # Settlement.
    result = models.CharField(max_length=4, choices=[(r.value, r.value) for r in Result], blank=True)
    void_reason = models.CharField(max_length=20, choices=[(r.value, r.value) for r in VoidReason], blank=True)
    close_price = models.CharField(max_length=40, blank=True)
    price_evidence = models.JSONField(default=list, blank=True)
    forced = models.JSONField(null=True, blank=True, help_text="Who forced the result, why, with what evidence.")
    fee_u = models.BigIntegerField(null=True, blank=True)
    breakage_u = models.BigIntegerField(null=True, blank=True)
    payouts_total_u = models.BigIntegerField(null=True, blank=True)
    winners = models.PositiveIntegerField(null=True, blank=True)
    reveal = models.JSONField(null=True, blank=True, help_text="Public reveal (payouts are on the bets).")
    settled_at = models.DateTimeField(null=True, blank=True)
    settlement_duration_s = models.FloatField(null=True, blank=True)
    oracle_attempts = models.PositiveIntegerField(default=0)
    oracle_last_error = models.TextField(blank=True)
    settlement_flow_id = models.CharField(
        max_length=200,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text="The settlement's flow id, set when settlement starts (ops/tracing.py).",
    )
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-code"]
        permissions = [
            ("force_round_result", "Can force a round's result (UP/DOWN/VOID) from LOCKED"),
            ("enter_oracle_price", "Can enter an official closing price with evidence"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(min_stake_u__gt=0), name="rounds_round_min_stake_positive"),
            models.CheckConstraint(condition=models.Q(fee_bps__lte=10_000), name="rounds_round_fee_bps_range"),
            models.CheckConstraint(
                condition=models.Q(up_pool_u__gte=0, down_pool_u__gte=0), name="rounds_round_pools_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"round {self.code} ({self.status})"

    @property
    def total_pool_u(self) -> int:
        """Return the sum of both pools."""
        return self.up_pool_u + self.down_pool_u

    @property
    def is_finished(self) -> bool:
        """True once the round is settled or void."""
        return self.status in self.FINISHED


class PoolStripe(models.Model):
    """One of the stripes of an OPEN round's pool figures (`rounds.pools`): each bet adds its stake and count
    to one stripe row, never to the round's row, so bets of one round do not all write one row. The
    figures shown before lock are the sums over a round's stripes; at lock the round stores its own."""

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="pool_stripes", db_index=False)
    stripe = models.PositiveSmallIntegerField()
    up_pool_u = models.BigIntegerField(default=0)
    down_pool_u = models.BigIntegerField(default=0)
    up_bets = models.PositiveIntegerField(default=0)
    down_bets = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "stripe"], name="rounds_poolstripe_one_row_per_stripe"),
        ]

    def __str__(self) -> str:
        return f"round {self.round_id} stripe {self.stripe}"


class Bet(models.Model):
    """One player's stake on one side of one round (one bet per player per round)."""

    # Indexed by the (round, player) and (round, side) indexes below; fewer indexes, faster settlement.
    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="bets", db_index=False)
    player = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bets")
    account = models.ForeignKey(
        "ledger.Account",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text="The player's available account the stake came from and any payout goes to.",
    )
    bet_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    side = models.CharField(max_length=4, choices=[(s.value, s.value) for s in Side])
    stake_u = models.BigIntegerField()
    placed_at = models.DateTimeField()
    payout_u = models.BigIntegerField(null=True, blank=True)
    leaf = models.BinaryField(
        max_length=32,
        null=True,
        editable=False,
        help_text="Merkle leaf hash of the public bet record, computed when the bet is placed.",
    )
    flow_id = models.CharField(
        max_length=200,
        unique=True,
        editable=False,
        default=bet_flow_id,
        help_text="The money flow this record starts: on its spans, logs, tasks and PSP calls (ops/tracing.py).",
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["round", "player"], name="rounds_bet_one_per_player_per_round"),
            models.CheckConstraint(condition=models.Q(stake_u__gt=0), name="rounds_bet_stake_positive"),
            models.CheckConstraint(condition=models.Q(side__in=["UP", "DOWN"]), name="rounds_bet_side_valid"),
            models.CheckConstraint(
                condition=models.Q(payout_u__isnull=True) | models.Q(payout_u__gte=0),
                name="rounds_bet_payout_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["round", "side"], name="rounds_bet_round_side")]

    def __str__(self) -> str:
        """The admin's title and links: the stake in the round's currency, as every money column writes it."""
        return f"bet {self.bet_id} {self.side} {format_money_safe(self.stake_u, self.round.currency)}"


class OracleObservation(models.Model):
    """What one price source said about one round's close (fetched, or entered by an operator)."""

    class Kind(models.TextChoices):
        FETCHED = "fetched", "Fetched from a configured source"
        OPERATOR = "operator", "Entered by an operator with evidence"

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="observations")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    source = models.CharField(max_length=100)
    price = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    url = models.TextField(blank=True)
    evidence = models.TextField(blank=True, help_text="Operator's evidence: where the price was read.")
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["round", "source"],
                condition=models.Q(kind="operator"),
                name="rounds_observation_one_operator_price_per_source",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.price or self.error}"


class MerkleLevel(models.Model):
    """One level of a locked round's Merkle tree, written once at lock (see `rounds/proofs.py`)."""

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="merkle_levels", db_index=False)
    level = models.PositiveSmallIntegerField(help_text="0 = the leaves; the last level is the root alone.")
    width = models.PositiveIntegerField(help_text="How many 32-byte hashes the level holds.")
    hashes = models.BinaryField(editable=False, help_text="The level's node hashes, 32 bytes each, left to right.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "level"], name="rounds_merklelevel_one_per_level"),
            models.CheckConstraint(condition=models.Q(width__gt=0), name="rounds_merklelevel_width_positive"),
            models.CheckConstraint(
                condition=Exact(Length("hashes"), models.F("width") * 32), name="rounds_merklelevel_width_matches"
            ),
        ]

    def __str__(self) -> str:
        return f"level {self.level} of round {self.round_id} ({self.width} nodes)"


class LeafPosition(models.Model):
    """A bet's leaf index in its round's Merkle tree (its rank by bet_id), written once at lock.

    No database foreign key: a million deferred checks at the lock's commit would cost more than the whole
    tree. The rows are written by one INSERT ... SELECT from rounds_bet itself, bets are never deleted, and
    every proof read through a position is checked against the round's root before it is served.
    """

    bet = models.OneToOneField(
        Bet, on_delete=models.PROTECT, primary_key=True, related_name="leaf_position", db_constraint=False
    )
    position = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"bet {self.bet_id} at leaf {self.position}"
