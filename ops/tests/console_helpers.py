"""Story builders shared by the console's tests: a player who deposits, bets and withdraws."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from ops.actors import SystemActor
from payouts.tests.helpers import destination_for


def custody_deposit(*, user: Any, amount_u: int, reference: str, currency: str = "USDC") -> Any:
    """Store and process a signed custody deposit (credited once)."""
    from webhooks.processing import webhook_event_process
    from webhooks.receiving import signed_deposit_receive

    received = signed_deposit_receive(
        provider="custody",
        headers={},
        enqueue=False,
        payload={"reference": reference, "user_id": str(user.public_id), "amount_u": amount_u, "currency": currency},
    )
    webhook_event_process(event_id=received.event.pk)
    return received.event.deposit


def open_next_round() -> Any:
    """Open, through the service and on the real clock, the first round whose reference close is final now.

    That is the session after the last one whose close (plus the settle buffer) has passed: today's
    round before today's close, the next session's after it. Every record of a story (deposit, bet,
    withdrawal) then carries real instants in the order they happened. In the five minutes between a
    close and its settle buffer no round can take bets; the helper waits them out.
    """
    import time as _time
    from datetime import timedelta

    from rounds.domain.calendar import code_for, next_session, previous_session, session_times
    from rounds.services import round_open_at_reference

    while True:
        now = timezone.now()
        target = next_session(on_or_after=now.date() - timedelta(days=7))
        for _ in range(15):
            reference_final = session_times(day=previous_session(day=target)).settle_after_utc <= now
            if reference_final and now < session_times(day=target).lock_utc - timedelta(seconds=30):
                break
            target = next_session(on_or_after=target + timedelta(days=1))
        else:
            _time.sleep(10)  # between a close and its settle buffer: wait for the next round's reference
            continue
        break
    return round_open_at_reference(
        code=code_for(target), reference=Decimal(100), source="test", acting_user=SystemActor("test"), reason="test"
    )


def story(*, player: Any) -> dict[str, Any]:
    """Deposit 50 USDC, bet 5 USDC UP, withdraw 10 USDC: in that order, a moment apart."""
    from payouts.services import withdrawal_request
    from rounds.betting import bet_place

    round_obj = open_next_round()
    deposit = custody_deposit(user=player, amount_u=50_000_000, reference=f"dep-{player.pk}")
    bet = bet_place(user=player, code=round_obj.code, side="UP", stake_u=5_000_000)
    withdrawal = withdrawal_request(
        user=player, amount_u=10_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    return {"round": round_obj, "deposit": deposit, "bet": bet, "withdrawal": withdrawal, "now": timezone.now()}
