"""Fixtures for the rounds tests: a patchable clock, static oracle sources, rounds at any stage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ops.actors import BEAT
from rounds.domain.calendar import session_times
from rounds.domain.oracle import StaticPriceSource

INSTRUMENT = "NASDAQ-COMPOSITE"


class Clock:
    """A settable clock patched over rounds.clock.now."""

    def __init__(self) -> None:
        self.now = datetime(2025, 9, 8, 12, 0, tzinfo=session_times(day=date(2025, 9, 8)).open_utc.tzinfo)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("rounds.clock.now", fake)
    return fake


class Prices:
    """Two configured sources (a, b); set each one's close per day, or leave it missing."""

    def __init__(self) -> None:
        self.book: dict[str, dict[tuple[str, date], Decimal]] = {"src-a": {}, "src-b": {}}

    def set(self, day: date, price: str | None, *, source: str | None = None) -> None:
        for name in [source] if source else list(self.book):
            if price is None:
                self.book[name].pop((INSTRUMENT, day), None)
            else:
                self.book[name][(INSTRUMENT, day)] = Decimal(price)

    def sources(self) -> list[Any]:
        return [StaticPriceSource(name=name, prices=dict(book)) for name, book in self.book.items()]


@pytest.fixture
def prices(monkeypatch: pytest.MonkeyPatch) -> Prices:
    book = Prices()
    monkeypatch.setattr("rounds.services.configured_sources", book.sources)
    monkeypatch.setattr("rounds.settlement.configured_sources", book.sources)
    return book


@pytest.fixture
def low_min_stake(settings: Any) -> None:
    """Allow 1-micro-unit stakes (the rounding examples)."""
    settings.MIN_STAKE_U = 1


@pytest.fixture
def open_round(clock: Clock, prices: Prices, db: Any) -> Callable[..., Any]:
    """open_round(code, reference="100") -> an OPEN round, the clock set an hour before its lock."""
    from rounds.tests.factories import RoundFactory

    def _open(code: str = "20250908", reference: str = "100") -> Any:
        return RoundFactory.create(code=code, reference=reference, clock=clock, prices=prices)

    return _open


@pytest.fixture
def place(fund: Callable[..., Any]) -> Callable[..., Any]:
    """place(round, side, stake_u) -> a bet by a new player funded with the stake (or `player`, funded with it)."""
    from rounds.tests.factories import BetFactory

    def _place(round_obj: Any, side: str, stake_u: int, *, player: Any = None) -> Any:
        if player is None:
            return BetFactory.create(round=round_obj, side=side, stake_u=stake_u)
        fund(player, stake_u)
        return BetFactory.create(round=round_obj, side=side, stake_u=stake_u, player=player)

    return _place


@pytest.fixture
def lock_and_reach_settlement(clock: Clock) -> Callable[..., Any]:
    """Lock the round (as the tick would) and move the clock past its settle time."""
    from rounds.services import round_lock

    def _go(round_obj: Any) -> Any:
        clock.set(round_obj.lock_at)
        locked, _ = round_lock(code=round_obj.code, acting_user=BEAT)
        clock.set(round_obj.settle_after + timedelta(seconds=1))
        return locked

    return _go


@pytest.fixture
def force_settle(make_staff: Callable[..., Any]) -> Callable[..., Any]:
    """force_settle(round, "UP") -> the round, settled by two finance operators (propose, then approve)."""
    from ops.approvals import decision_approve
    from rounds.overrides import force_result_propose

    maker, checker = make_staff(role="finance"), make_staff(role="finance")

    def _force(round_obj: Any, result: str, *, reason: str = "oracle outage", evidence: str = "wsj.com") -> Any:
        proposal = force_result_propose(
            code=round_obj.code, result=result, reason=reason, evidence=evidence, acting_user=maker
        )
        decision_approve(proposal_id=proposal.pk, acting_user=checker, reason="checked the close")
        round_obj.refresh_from_db()
        return round_obj

    _force.maker, _force.checker = maker, checker  # type: ignore[attr-defined]
    return _force
