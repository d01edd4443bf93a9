"""Placing a bet: the stake moves from the player's available balance into the round's pool, before lock.

A bet is one call of the database function `rounds_bet_place` (migration 0012) inside one transaction:
it holds the round shared as `rounds.lock_objects` describes (so `round_lock`, which takes it
exclusively, waits for the bets in flight and no bet commits after the lock), checks the pause
switch, the round's status and lock time against `rounds.clock.now()` (passed in: tests move the clock),
the minimum stake and one bet per player, then opens the player's account and posts the stake through
the ledger's own functions (`ledger_account_open`, `ledger_post`: the ledger's tables are never written
here) to one of the round's pool stripes (`rounds.pools`), inserts the bet and adds it to its stripe's
figures. A refusal writes nothing. Everything the function needs from Python is known before the call:
the bet's id, its time, its Merkle leaf (`rounds.domain.merkle.bet_leaf` of its public record), the
accounts' names (the ledger's and `rounds.accounts`' naming) and the posting's metadata and actor.

The API's bet (`bet_place_keyed`) also hands the function its `Idempotency-Key` (`ops.idempotency.
keyed_request`): the key is reserved, answered (a replay, a reused key) and completed with the 201 body in
the same call, so a new bet costs one statement and one commit. A 4xx refusal is stored as the key's answer
(one more statement, as `ops.idempotency.idempotent_call` stores refusals) before that commit; a 5xx one
(the pause) rolls the key back, as `idempotent_call` releases it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import connection, transaction
from rest_framework.utils.encoders import JSONEncoder

from ledger.errors import LedgerError
from ledger.services import posting_refusal, user_account_name
from ops.actors import actor_label, require_player
from ops.errors import ApplicationError
from ops.idempotency import KeyedRequest, keyed_outcome, keyed_refusal_store
from ops.validation import amount_u_check
from rounds import clock
from rounds.domain.merkle import bet_leaf
from rounds.domain.pool import Side

from . import errors
from .accounts import round_pool_stripe_name
from .models import Bet, Round
from .pools import POOL_STRIPES
from .selectors import bet_record

if TYPE_CHECKING:
    from accounts.models import User

_CALL = (
    "SELECT status, detail, key_id FROM rounds_bet_place("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s::jsonb)"
)


@dataclass(frozen=True)
class BetCall:
    """What `rounds_bet_place` answered: `placed`, `replay` or a refusal, its detail, and the key's row id."""

    status: str
    detail: dict[str, Any]
    key_id: int | None


@dataclass(frozen=True)
class BetAnswer:
    """The API's answer to a keyed bet: its HTTP status and body, and whether it is a stored answer replayed."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def _new_bet(*, user: User, code: str, side: str, stake_u: int) -> Bet:
    """Validate the bet and build it in memory with its id, time and leaf (nothing is read or written)."""
    require_player(user)
    if side not in (Side.UP.value, Side.DOWN.value):
        raise errors.InvalidBet(f"side must be UP or DOWN, not {side!r}.")
    amount_u_check(stake_u, error=errors.InvalidBet, field="stake_u")
    bet = Bet(
        round=Round(code=code, status=Round.Status.OPEN, currency=""),
        player=user,
        side=side,
        stake_u=stake_u,
        placed_at=clock.now(),
        bet_id=uuid.uuid4(),
    )
    bet.leaf = bet_leaf(**bet_record(bet=bet))  # type: ignore[arg-type]
    return bet


def _call(*, bet: Bet, keyed: KeyedRequest | None, body: dict[str, Any] | None) -> BetCall:
    """Call `rounds_bet_place` once (inside the caller's transaction)."""
    user, code = bet.player, bet.round.code
    stripe = user.pk % POOL_STRIPES
    metadata = {"round": code, "side": bet.side, "bet_id": str(bet.bet_id)}  # as ledger.services.transfer stored it
    with connection.cursor() as cursor:
        cursor.execute(
            _CALL,
            [
                code,
                user.pk,
                bet.side,
                bet.stake_u,
                bet.bet_id,
                bet.placed_at,
                cast("bytes", bet.leaf),  # set by _new_bet
                bet.flow_id,
                user_account_name(user=user),
                stripe,
                round_pool_stripe_name(code=code, stripe=stripe),
                actor_label(user),
                json.dumps(metadata),
                keyed.key if keyed else None,
                keyed.scope if keyed else None,
                keyed.fingerprint if keyed else None,
                (keyed.legacy_fingerprint or None) if keyed else None,
                keyed.lock_id if keyed else None,
                json.dumps(body, cls=JSONEncoder) if body is not None else None,
            ],
        )
        status, detail, key_id = cursor.fetchone()
    if isinstance(detail, str):  # Django's PostgreSQL backend reads jsonb as text
        detail = json.loads(detail)
    return BetCall(status=status, detail=detail or {}, key_id=key_id)


def _refusal(call: BetCall, *, bet: Bet) -> ApplicationError:
    """Return the error a refusal of `rounds_bet_place` stands for (the refusals `bet_place` always raised)."""
    code = bet.round.code
    if call.status == "paused":
        return errors.BettingPaused("Betting is paused by the operators; try again later.")
    if call.status == "round_not_found":
        return errors.RoundNotFound(f"There is no round {code}.")
    if call.status == "round_locked":
        return errors.RoundLocked(f"Round {code} locked at {call.detail['lock_at']}Z; no more bets.")
    if call.status == "stake_too_small":
        return errors.StakeTooSmall(f"The minimum stake is {call.detail['min_stake_u']} micro-units.")
    if call.status == "already_bet":
        return errors.AlreadyBet(f"You already have a bet in round {code}; one bet per player per round.")
    refused: LedgerError = posting_refusal(call.status, call.detail, reference=f"bet:{bet.bet_id}")
    return refused


def bet_place(*, user: User, code: str, side: str, stake_u: int) -> Bet:
    """Move a stake from the player's available balance into the round's pool, before lock; return the bet.

    The service without a key (the factories, the console, scripts): one call of `rounds_bet_place`, then the
    stored bet read back. Raises the refusal (RoundNotFound, BettingPaused, RoundLocked, StakeTooSmall,
    AlreadyBet, InsufficientFunds, InvalidBet, NotAPlayer), having changed nothing.
    """
    bet = _new_bet(user=user, code=code, side=side, stake_u=stake_u)
    with transaction.atomic():
        call = _call(bet=bet, keyed=None, body=None)
        if call.status != "placed":
            raise _refusal(call, bet=bet)
    return Bet.objects.select_related("round", "player").get(bet_id=bet.bet_id)


def bet_place_keyed(
    *,
    user: User,
    code: str,
    side: str,
    stake_u: int,
    keyed: KeyedRequest,
    render: Callable[[Bet], dict[str, Any]],
) -> BetAnswer:
    """Place a bet under an Idempotency-Key in one call and one commit; return the answer to send (the API's bet).

    `render` turns the bet into the 201 body (the view's output serializer); the body is stored with the key
    in the same call, so a retry replays it. A refusal of the bet (4xx) is stored under the key as its problem
    document and answered (a replay answers it again); a 5xx refusal (BettingPaused) is raised and its key
    rolls back with the transaction, free for a retry, as `idempotent_call` releases it. A key used for
    another request (422) or still running under `idempotent_call` (409) is refused as that path refuses it,
    nothing stored.
    """
    bet = _new_bet(user=user, code=code, side=side, stake_u=stake_u)
    body = dict(render(bet))
    with transaction.atomic():
        call = _call(bet=bet, keyed=keyed, body=body)
        if call.status == "replay":
            return BetAnswer(status=int(call.detail["status"]), body=call.detail["body"], replayed=True)
        if call.status in ("key_reused", "in_progress"):
            keyed_outcome("mismatch" if call.status == "key_reused" else "in_progress")  # raises
        keyed_outcome("recovered" if call.detail.get("recovered") else "reserved")
        if call.status == "placed":
            answer = BetAnswer(status=201, body={**body, **{k: call.detail[k] for k in ("currency", "round_status")}})
        else:
            refusal = _refusal(call, bet=bet)
            if refusal.status >= 500:  # not an answer to keep (the pause): the key rolls back with the bet, free
                keyed_outcome("released")
                raise refusal
            problem = refusal.problem()
            if call.key_id is not None:
                keyed_refusal_store(key_id=call.key_id, problem=problem)
            answer = BetAnswer(status=problem["status"], body=problem)
    keyed_outcome("completed")
    return answer


__all__ = ["BetAnswer", "bet_place", "bet_place_keyed"]
