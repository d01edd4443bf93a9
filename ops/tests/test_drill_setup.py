"""The fault drill's round: at any hour, including the minutes around a session's close."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ops.tests import drill_setup
from rounds.domain import calendar

pytestmark = pytest.mark.django_db


def session_times_on_a_weekday() -> Any:
    return calendar.session_times(day=calendar.next_session(on_or_after=datetime(2026, 12, 7).date()))


def test_a_round_far_from_its_lock_is_opened_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    times = session_times_on_a_weekday()
    monkeypatch.setattr("rounds.clock.now", lambda: times.lock_utc - timedelta(hours=3))
    monkeypatch.setattr(drill_setup.time, "sleep", lambda s: pytest.fail(f"slept {s}s"))
    assert drill_setup.open_round(needs_seconds=600).code == times.code


def test_near_a_lock_it_waits_for_the_next_round_then_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    times = session_times_on_a_weekday()
    now = [times.lock_utc - timedelta(seconds=120)]  # two minutes before the lock: too soon for the drill
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)

    monkeypatch.setattr("rounds.clock.now", lambda: now[0])
    monkeypatch.setattr(drill_setup.time, "sleep", sleep)
    round_obj = drill_setup.open_round(needs_seconds=600)

    following = calendar.session_times(day=calendar.next_session(on_or_after=times.day + timedelta(days=1)))
    assert round_obj.code == following.code  # the next session's round, its reference final by then
    assert len(slept) == 1 and now[0] > times.settle_after_utc
    assert (round_obj.lock_at - now[0]).total_seconds() > 600
