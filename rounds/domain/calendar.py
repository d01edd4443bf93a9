"""XNYS session schedule for daily rounds: one round per trading session.

The schedule comes from ``exchange_calendars`` (calendar ``XNYS``) and is
loaded once per process for the fixed range ``CALENDAR_START`` ..
``CALENDAR_END``.  The range is passed explicitly because the library's
default bounds are relative to the wall clock (20 years back, 1 year ahead),
which would make answers depend on when the process started.

All instants returned are timezone-aware ``datetime`` objects in UTC
(``datetime.timezone.utc``).  A round's ``code`` is the session date as
``YYYYMMDD``.

Caveat: unscheduled closures (e.g. national days of mourning) only appear
once the library is updated; a future date that is a session today may
later stop being one.
"""

from __future__ import annotations

import bisect
import functools
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

CALENDAR_NAME = "XNYS"
CALENDAR_START = date(2015, 1, 1)
CALENDAR_END = date(2035, 12, 31)
LOCK_BEFORE_CLOSE = timedelta(seconds=1)
SETTLE_AFTER_CLOSE = timedelta(minutes=5)

_CODE_RE = re.compile(r"[0-9]{8}")

__all__ = [
    "CALENDAR_END",
    "CALENDAR_NAME",
    "CALENDAR_START",
    "LOCK_BEFORE_CLOSE",
    "SETTLE_AFTER_CLOSE",
    "CalendarError",
    "InvalidRoundCode",
    "NotATradingDay",
    "OutsideCalendarRange",
    "SessionTimes",
    "code_for",
    "is_session",
    "next_session",
    "parse_code",
    "previous_session",
    "session_times",
]


class CalendarError(Exception):
    """Base class for calendar errors."""


class NotATradingDay(CalendarError):
    """The date is not an XNYS session (weekend, holiday or closure)."""


class OutsideCalendarRange(CalendarError):
    """The date (or the session asked for) lies outside the loaded range."""


class InvalidRoundCode(CalendarError, ValueError):
    """A round code is not a valid ``YYYYMMDD`` calendar date."""


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """Key instants (UTC) of the round for one XNYS session."""

    code: str
    day: date
    open_utc: datetime
    close_utc: datetime
    lock_utc: datetime
    settle_after_utc: datetime
    is_early_close: bool


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Pre-extracted XNYS schedule: sorted sessions and their UTC open/close."""

    sessions: tuple[date, ...]
    opens: dict[date, datetime]
    closes: dict[date, datetime]
    early_closes: frozenset[date]


def _to_utc(value: datetime) -> datetime:
    """Return a pandas/aware timestamp as a plain ``datetime`` in ``timezone.utc``."""
    plain = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return plain.astimezone(UTC)


@functools.cache
def _schedule() -> _Schedule:
    """Load the XNYS calendar once and extract the schedule as plain Python."""
    import exchange_calendars  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        # exchange_calendars 4.13.2 uses Series.values on tz-aware data; pandas 3.1 warns
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        cal = exchange_calendars.get_calendar(
            CALENDAR_NAME,
            start=CALENDAR_START.isoformat(),
            end=CALENDAR_END.isoformat(),
        )
    frame = cal.schedule
    sessions = tuple(ts.date() for ts in frame.index)
    opens = {d: _to_utc(ts) for d, ts in zip(sessions, frame["open"], strict=True)}
    closes = {d: _to_utc(ts) for d, ts in zip(sessions, frame["close"], strict=True)}
    early = frozenset(ts.date() for ts in cal.early_closes)
    return _Schedule(sessions=sessions, opens=opens, closes=closes, early_closes=early)


def _check_day(day: object, *, name: str) -> date:
    """Validate that ``day`` is a ``date`` (not a ``datetime``) inside the range."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise TypeError(f"{name} must be a datetime.date, got {type(day).__name__}")
    if not CALENDAR_START <= day <= CALENDAR_END:
        raise OutsideCalendarRange(f"{day} is outside {CALENDAR_START}..{CALENDAR_END}")
    return day


def is_session(*, day: date) -> bool:
    """Return True if ``day`` is an XNYS trading session."""
    return _check_day(day, name="day") in _schedule().opens


def session_times(*, day: date) -> SessionTimes:
    """Return the round instants for session ``day``; raise NotATradingDay otherwise."""
    if not is_session(day=day):
        raise NotATradingDay(f"{day} is not an XNYS session")
    sched = _schedule()
    close = sched.closes[day]
    return SessionTimes(
        code=code_for(day),
        day=day,
        open_utc=sched.opens[day],
        close_utc=close,
        lock_utc=close - LOCK_BEFORE_CLOSE,
        settle_after_utc=close + SETTLE_AFTER_CLOSE,
        is_early_close=day in sched.early_closes,
    )


def previous_session(*, day: date) -> date:
    """Return the last session strictly before ``day`` (which need not be a session)."""
    sessions = _schedule().sessions
    index = bisect.bisect_left(sessions, _check_day(day, name="day"))
    if index == 0:
        raise OutsideCalendarRange(f"no loaded session before {day}")
    return sessions[index - 1]


def next_session(*, on_or_after: date) -> date:
    """Return the first session on or after ``on_or_after``."""
    sessions = _schedule().sessions
    index = bisect.bisect_left(sessions, _check_day(on_or_after, name="on_or_after"))
    if index == len(sessions):
        raise OutsideCalendarRange(f"no loaded session on or after {on_or_after}")
    return sessions[index]


def code_for(day: date) -> str:
    """Return the round code ``YYYYMMDD`` for ``day``."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise TypeError(f"day must be a datetime.date, got {type(day).__name__}")
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def parse_code(code: str) -> date:
    """Parse a ``YYYYMMDD`` round code; raise InvalidRoundCode if it is not a date."""
    if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
        raise InvalidRoundCode(f"round code must be 8 ASCII digits YYYYMMDD, got {code!r}")
    try:
        return date(int(code[:4]), int(code[4:6]), int(code[6:]))
    except ValueError as exc:
        raise InvalidRoundCode(f"round code {code!r} is not a calendar date") from exc
