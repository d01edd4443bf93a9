"""One PSP call in flight per payout: a lease on the withdrawal, with an expiry, claimed before any call.

The payout worker (a first submission, a Celery retry, the requeue's resubmission) and the reconciler (a
status call) each claim the withdrawal's lease in a short transaction under its row lock, with a
conditional UPDATE (`payout_lease_until` empty or past, by the database's clock), then call the PSP with
no transaction open, then release it in the transaction that records the answer. A second caller that
finds the lease held does not call the PSP at all: it returns and leaves the payout to the holder.

No row lock is held across the call (DESIGN.md §3: no network I/O inside a locking transaction); the
lease is what keeps the others out. It lasts the provider's call budget (`PayoutProvider.call_budget_s`,
its timeouts) plus PAYOUT_LEASE_MARGIN_S, so it outlives any call its holder may still be making. A
holder that finds, after claiming, that less than the call budget is left (it stalled before calling)
does not call (`lease_left_s`).

A holder that dies (worker killed, its database connection cut) leaves the lease; once it expires, the next
caller takes it over. Nobody has to come by chance: a caller that found the lease held, and the requeue for a
lease that ends before its next run, schedule a resume at the lease's expiry (`submit_payout` with
`after_lease_of`: it acts only if that holder never gave the lease back), and the requeue takes a lease left
expired at once (`payouts.selectors.payouts_waiting`). The payout worker then asks the PSP what became of the cut-off call first
(`payouts.services._found_at_psp`) and submits again, with the same idempotency key, only if the PSP does
not have it (and if it had it after all, the PSP replays: it never pays twice). The attempt records who called (`PayoutAttempt.lease_owner`) and whose expired lease it took over
(`took_over_from`); `payout_lease_takeovers_total` counts those.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from .models import Withdrawal
from .providers import get_provider

logger = logging.getLogger(__name__)


def lease_margin_s() -> float:
    """How long a lease outlives its holder's longest possible PSP call (setting PAYOUT_LEASE_MARGIN_S)."""
    return float(settings.PAYOUT_LEASE_MARGIN_S)


def lease_duration_s(provider: str) -> float:
    """How long a lease on a payout of this rail lasts: the rail's call budget plus the margin."""
    return get_provider(provider).call_budget_s() + lease_margin_s()


def lease_owner_new(purpose: str) -> str:
    """A name for one caller: what it does, where it runs (host, pid, thread), and a random tail."""
    return f"{purpose}@{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"[:200]


@dataclass(frozen=True)
class Lease:
    """A claimed lease: who holds it, until when (database clock), and whose expired lease it replaced."""

    withdrawal_id: int
    owner: str
    until: datetime
    duration_s: float
    claimed_at: float  # time.monotonic() before the claim: the holder's own conservative clock
    took_over_from: str = ""


@dataclass(frozen=True)
class LeaseBusy:
    """Someone else holds the lease: do not call the PSP."""

    owner: str
    until: datetime | None
    left_s: float = 0.0  # seconds until it expires, by the database's clock

    def line(self) -> str:
        return f"a PSP call for this payout is in flight (lease held by {self.owner} until {self.until})"


def _db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        (now,) = cursor.fetchone()
    assert isinstance(now, datetime)
    return now


def lease_claim(*, withdrawal: Withdrawal, purpose: str) -> Lease | LeaseBusy:
    """Claim the lease of a withdrawal locked by the caller's transaction (`withdrawal_lock`).

    The claim is a conditional UPDATE (free or expired, by the database's clock), recorded in the caller's
    transaction: it commits with whatever the caller records with it (the attempt). The instance is kept
    in step, so a later `save()` in the same transaction writes the lease back unchanged.
    """
    started = time.monotonic()
    owner = lease_owner_new(purpose)
    duration_s = lease_duration_s(withdrawal.provider)
    previous = withdrawal.payout_lease_owner
    claimed = (
        Withdrawal.objects.filter(pk=withdrawal.pk)
        .filter(Q(payout_lease_until__isnull=True) | Q(payout_lease_until__lte=Now()))
        .update(
            payout_lease_owner=owner,
            payout_lease_until=ExpressionWrapper(Now() + timedelta(seconds=duration_s), output_field=DateTimeField()),
        )
    )
    if not claimed:
        fresh = Withdrawal.objects.values("payout_lease_owner", "payout_lease_until").get(pk=withdrawal.pk)
        until = fresh["payout_lease_until"]
        left_s = max(0.0, (until - _db_now()).total_seconds()) if until is not None else 0.0
        logger.warning(
            "withdrawal %s: %s not calling the PSP; lease held by %s until %s",
            withdrawal.pk,
            purpose,
            fresh["payout_lease_owner"],
            fresh["payout_lease_until"],
        )
        return LeaseBusy(fresh["payout_lease_owner"], until, left_s)
    until = Withdrawal.objects.values_list("payout_lease_until", flat=True).get(pk=withdrawal.pk)
    assert until is not None
    withdrawal.payout_lease_owner, withdrawal.payout_lease_until = owner, until
    if previous:
        logger.warning(
            "withdrawal %s: %s took over the expired lease of %s (its holder never finished)",
            withdrawal.pk,
            purpose,
            previous,
        )
    return Lease(withdrawal.pk, owner, until, duration_s, started, took_over_from=previous)


def lease_left_s(lease: Lease, *, provider: str) -> float:
    """Seconds the holder may still start a call in: the lease left, minus the rail's call budget."""
    elapsed = time.monotonic() - lease.claimed_at
    return lease.duration_s - elapsed - get_provider(provider).call_budget_s()


def lease_release(lease: Lease) -> bool:
    """Give the lease back (only if still ours); False when it expired and someone else took it meanwhile."""
    released = Withdrawal.objects.filter(pk=lease.withdrawal_id, payout_lease_owner=lease.owner).update(
        payout_lease_owner="", payout_lease_until=None
    )
    if not released:
        logger.error(
            "withdrawal %s: the lease of %s ran out before it finished and was taken over; "
            "raise PAYOUT_LEASE_MARGIN_S or lower the PSP timeouts",
            lease.withdrawal_id,
            lease.owner,
        )
    return bool(released)


def lease_line(withdrawal: Withdrawal) -> str:
    """For people (admin, stuck-job report): who is calling the PSP about this payout, or ""."""
    if not withdrawal.payout_lease_owner or withdrawal.payout_lease_until is None:
        return ""
    state = "held" if withdrawal.payout_lease_until > _db_now() else "expired (its holder died)"
    return f"lease {state}: {withdrawal.payout_lease_owner} until {withdrawal.payout_lease_until:%Y-%m-%d %H:%M:%S}"
