"""Tests for rounds.domain.calendar: XNYS sessions, lock/settle instants, codes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from rounds.domain.calendar import (
    CALENDAR_END,
    CALENDAR_START,
    InvalidRoundCode,
    NotATradingDay,
    OutsideCalendarRange,
    code_for,
    is_session,
    next_session,
    parse_code,
    previous_session,
    session_times,
)


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    """Return an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_black_friday_2025_is_an_early_close() -> None:
    times = session_times(day=date(2025, 11, 28))
    assert times.code == "20251128"
    assert times.is_early_close is True
    assert times.open_utc == utc(2025, 11, 28, 14, 30)
    assert times.close_utc == utc(2025, 11, 28, 18, 0)
    assert times.lock_utc == utc(2025, 11, 28, 17, 59, 59)
    assert times.lock_utc.isoformat().replace("+00:00", "Z") == "2025-11-28T17:59:59Z"
    assert times.settle_after_utc == utc(2025, 11, 28, 18, 5)


def test_dst_change_moves_utc_lock_by_one_hour() -> None:
    before = session_times(day=date(2025, 3, 7))
    after = session_times(day=date(2025, 3, 10))
    assert before.lock_utc == utc(2025, 3, 7, 20, 59, 59)
    assert after.lock_utc == utc(2025, 3, 10, 19, 59, 59)
    assert not before.is_early_close and not after.is_early_close


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 9),  # national day of mourning (President Carter)
        date(2026, 4, 3),  # Good Friday
        date(2025, 11, 27),  # Thanksgiving
        date(2025, 12, 25),  # Christmas
        date(2025, 11, 29),  # Saturday
        date(2025, 11, 30),  # Sunday
    ],
)
def test_non_sessions_raise(day: date) -> None:
    assert is_session(day=day) is False
    with pytest.raises(NotATradingDay):
        session_times(day=day)


def test_previous_session_skips_thanksgiving() -> None:
    assert previous_session(day=date(2025, 11, 28)) == date(2025, 11, 26)


def test_previous_session_of_a_non_session_day() -> None:
    assert previous_session(day=date(2025, 11, 30)) == date(2025, 11, 28)
    assert previous_session(day=date(2025, 1, 10)) == date(2025, 1, 8)


def test_next_session() -> None:
    assert next_session(on_or_after=date(2025, 11, 27)) == date(2025, 11, 28)
    assert next_session(on_or_after=date(2025, 11, 28)) == date(2025, 11, 28)
    assert next_session(on_or_after=date(2025, 11, 29)) == date(2025, 12, 1)
    assert next_session(on_or_after=date(2026, 4, 3)) == date(2026, 4, 6)


def test_settle_after_is_close_plus_five_minutes_everywhere() -> None:
    day = date(2020, 1, 1)
    while day <= date(2030, 12, 31):
        if is_session(day=day):
            times = session_times(day=day)
            assert times.settle_after_utc - times.close_utc == timedelta(minutes=5)
            assert times.close_utc - times.lock_utc == timedelta(seconds=1)
            assert times.open_utc < times.lock_utc
            assert times.close_utc.tzinfo is UTC
        day += timedelta(days=1)


def test_range_covers_2020_to_2030() -> None:
    assert CALENDAR_START <= date(2020, 1, 1) and CALENDAR_END >= date(2030, 12, 31)
    assert session_times(day=date(2020, 1, 2)).code == "20200102"
    assert session_times(day=date(2030, 12, 31)).close_utc == utc(2030, 12, 31, 21, 0)


def test_out_of_range_is_a_distinct_error() -> None:
    with pytest.raises(OutsideCalendarRange):
        session_times(day=date(2050, 1, 3))
    with pytest.raises(OutsideCalendarRange):
        previous_session(day=CALENDAR_START)


def test_datetime_is_refused_as_a_day() -> None:
    with pytest.raises(TypeError):
        session_times(day=datetime(2025, 11, 28, tzinfo=UTC))


def test_code_round_trip() -> None:
    assert code_for(date(2025, 1, 2)) == "20250102"
    assert parse_code("20250102") == date(2025, 1, 2)
    assert parse_code(code_for(date(2030, 12, 31))) == date(2030, 12, 31)


@pytest.mark.parametrize(
    "bad",
    [
        "2025-01-01",
        "20251301",
        "abc",
        "",
        "2025010",
        "202501011",
        "20250230",
        "00000101",
        "２０２５０１０１",
        " 20250101",
        "20250101\n",
        20250101,
    ],
)
def test_parse_code_rejects_bad_input(bad: object) -> None:
    with pytest.raises(InvalidRoundCode):
        parse_code(bad)  # type: ignore[arg-type]
