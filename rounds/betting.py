"""Placing a bet: the stake moves from the player's available balance into the round's pool, before lock.

Bets of one round run concurrently: each holds the round shared (`rounds.lock_objects.round_bet_lock`)
while it checks the status and the lock time, and `round_lock` takes it exclusively, so no bet commits
after the lock. The stake goes to one of the round's pool stripes (`rounds.pools`: a ledger account,
folded into the pool account at lock, and a `PoolStripe` row of figures), never to the round's row: its
pool figures are stored at lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from ledger.services import transfer, user_account
from ops.actors import require_player
from ops.models import Switch
from ops.switches import switch_is_on
from ops.validation import amount_u_check
from rounds import clock
from rounds.domain.merkle import bet_leaf
from rounds.domain.pool import Side

from . import errors
from .lock_objects import round_bet_lock
from .models import Bet, Round
from .pools import stripe_account, stripe_add
from .selectors import bet_record

if TYPE_CHECKING:
    from accounts.models import User


def bet_place(*, user: User, code: str, side: str, stake_u: int) -> Bet:
    """Move a stake from the player's available balance into the round's pool, before lock."""
    require_player(user)
    if side not in (Side.UP.value, Side.DOWN.value):
        raise errors.InvalidBet(f"side must be UP or DOWN, not {side!r}.")
    amount_u_check(stake_u, error=errors.InvalidBet, field="stake_u")
    if switch_is_on(Switch.Name.BETTING_PAUSED):
        raise errors.BettingPaused("Betting is paused by the operators; try again later.")
    with transaction.atomic():
        round_obj = round_bet_lock(code=code)
        now = clock.now()
        if round_obj.status != Round.Status.OPEN or now >= round_obj.lock_at:
            raise errors.RoundLocked(f"Round {code} locked at {round_obj.lock_at:%Y-%m-%d %H:%M:%S}Z; no more bets.")
        if stake_u < round_obj.min_stake_u:
            raise errors.StakeTooSmall(f"The minimum stake is {round_obj.min_stake_u} micro-units.")
        if Bet.objects.filter(round=round_obj, player=user).exists():
            raise errors.AlreadyBet(f"You already have a bet in round {code}; one bet per player per round.")
        account = user_account(user=user, currency=round_obj.currency)
        bet = Bet(round=round_obj, player=user, account=account, side=side, stake_u=stake_u, placed_at=now)
        bet.leaf = bet_leaf(**bet_record(bet=bet))  # type: ignore[arg-type]
        try:  # no savepoint needed: the refusal below leaves the whole transaction, which rolls back
            bet.save(force_insert=True)
        except IntegrityError as exc:  # bets run concurrently: a second bet of the player raced the check above
            if "rounds_bet_one_per_player_per_round" not in str(exc):
                raise
            raise errors.AlreadyBet(f"You already have a bet in round {code}; one bet per player per round.") from None
        transfer(
            source=account,
            destination=stripe_account(round_obj=round_obj, player_id=user.pk),
            amount_u=stake_u,
            type="bet",
            reference=f"bet:{bet.bet_id}",
            actor=user,
            metadata={"round": code, "side": side, "bet_id": str(bet.bet_id)},
        )
        stripe_add(round_obj=round_obj, player_id=user.pk, side=side, stake_u=stake_u)
    return bet


__all__ = ["bet_place"]
