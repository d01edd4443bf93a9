"""Row locks for rounds: the round row (the ledger locks its own accounts), shared by bets, exclusive otherwise.

Bets of one round run concurrently. Each bet holds the round *shared* until it commits: a shared
transaction-level advisory lock keyed by the round's code, then `SELECT ... FOR SHARE` of the round row.
The bet's database function takes both (`rounds_bet_place`, migration 0012: `pg_advisory_xact_lock_shared(
hashtext('rounds:bets'), hashtext(code))`, the statement `_BETS_LOCK` below takes in its exclusive form).
Every other write to a round (`round_lock_row`: the lock, settlement's callers, forced results, oracle
prices) takes the same advisory lock *exclusively* before `SELECT ... FOR UPDATE`. So `round_lock` waits
for every bet in flight to commit and holds new ones until it commits; they then read LOCKED and are
refused. A bet committed after the lock is impossible, and no row is updated by every bet: the round's row
is only share-locked (as the bet's foreign key to it share-locks it anyway at commit).

Why the advisory lock as well as the row lock: the row locks alone are exact (FOR SHARE conflicts with
FOR UPDATE), but PostgreSQL lets a new FOR SHARE join the share lockers already holding a row without
queueing behind a waiting FOR UPDATE, so a steady stream of bets could starve the lock. The lock manager
queues a new shared advisory request behind a waiting exclusive one, so the lock gets through at once.
Lock order everywhere: advisory, then the round row, then the ledger's accounts (ascending id). A bet takes
its Idempotency-Key's row before all of them (a duplicate waits there, holding nothing of the round's).
"""

from __future__ import annotations

from django.db import connection

from .errors import RoundNotFound
from .models import Round

_BETS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rounds:bets'), hashtext(%s))"  # a bet: ..._lock_shared


def _bets_lock(*, code: str) -> None:
    """Take the round's advisory lock exclusively (a bet takes it shared, in `rounds_bet_place`)."""
    if not connection.in_atomic_block:
        raise RuntimeError("A round lock must be taken inside transaction.atomic().")
    with connection.cursor() as cursor:
        cursor.execute(_BETS_LOCK, [code])


def round_lock_row(*, code: str) -> Round:
    """Lock one round exclusively (advisory lock, then SELECT ... FOR UPDATE) and return it fresh.

    Waits for the bets in flight on this round to commit; new bets wait for this transaction.
    """
    _bets_lock(code=code)
    try:
        return Round.objects.select_for_update().get(code=code)
    except Round.DoesNotExist as exc:
        raise RoundNotFound(f"There is no round {code}.") from exc
