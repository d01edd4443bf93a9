"""Placing a bet: the stake moves from the player's available balance into the round's pool, before lock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F

from ledger.services import transfer, user_account
from ops.actors import require_player
from ops.models import Switch
from ops.switches import switch_is_on
from ops.validation import amount_u_check
from rounds import clock
from rounds.domain.merkle import bet_leaf
from rounds.domain.pool import Side

from . import errors
from .lock_objects import round_lock_row
from .models import Bet, Round
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
        round_obj = round_lock_row(code=code)
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
        bet.save(force_insert=True)
        transfer(
            source=account,
            destination=round_obj.pool_account,
            amount_u=stake_u,
            type="bet",
            reference=f"bet:{bet.bet_id}",
            actor=user,
            metadata={"round": code, "side": side, "bet_id": str(bet.bet_id)},
        )
        pool, count = ("up_pool_u", "up_bets") if side == Side.UP else ("down_pool_u", "down_bets")
        Round.objects.filter(pk=round_obj.pk).update(**{pool: F(pool) + stake_u, count: F(count) + 1})
    return bet


__all__ = ["bet_place"]
