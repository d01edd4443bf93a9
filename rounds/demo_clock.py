"""The demo clock of `make run` (development only): move the rounds' time forward to a round's lock, close or
settlement, so a walk through the money loop can lock and settle a round for real (`manage.py demo_clock`).

The offset is a whole number of seconds in `RUN_DIR/demo_clock_offset` (`rounds.clock` reads it, in development
only). It only ever grows, so no round sees time run backwards (a bet placed after a lock, a lock before its
bets); `--reset` removes it, for a stack thrown away or started again.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from rounds import clock
from rounds.domain import calendar
from rounds.models import Round
from rounds.selectors import NEW_YORK

# Just past the instant, so the comparisons of the services (`now >= lock_at`, `now < settle_after`) see it passed.
PAST = timedelta(seconds=1)
TARGETS = {
    "open": ("day", ()),  # the start (New York) of the day of the next session whose round is not open yet
    "lock": ("lock_at", (Round.Status.OPEN,)),
    "close": ("close_at", Round.UNSETTLED),
    "settle": ("settle_after", Round.UNSETTLED),
}


class DemoClockRefused(Exception):
    """The demo clock cannot do that here or now; nothing was changed."""


@dataclass(frozen=True)
class Move:
    """What a move did: the round and instant aimed at, the offsets before and after, the shifted now."""

    code: str
    field: str
    instant: datetime
    offset_before_s: int
    offset_after_s: int
    shifted_now: datetime


def require_development() -> None:
    """Refuse outside ENVIRONMENT=development: the rounds run on the real time everywhere else."""
    from django.conf import settings

    if not clock.demo_clock_enabled():
        raise DemoClockRefused(
            f"demo_clock is refused here (ENVIRONMENT={settings.ENVIRONMENT}); the demo clock exists only where "
            f"ENVIRONMENT={clock.DEVELOPMENT}, and the rounds run on the real time everywhere else."
        )


def offset_write(seconds: int) -> None:
    """Write the offset atomically (a new file replaces the old), so a reader never sees half a number."""
    path = clock.offset_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    scratch.write_text(f"{seconds}\n")
    os.replace(scratch, path)


def offset_reset() -> int:
    """Remove the offset (the rounds return to the real time); return the offset it had."""
    require_development()
    before = clock.demo_offset_s()
    clock.offset_path().unlink(missing_ok=True)
    return before


def target_round(target: str) -> Round:
    """The round a move aims at: the earliest one OPEN (lock) or OPEN or LOCKED (close, settle)."""
    field, statuses = TARGETS[target]
    found = Round.objects.filter(status__in=statuses).order_by("code").first()
    if found is None:
        wanted = " or ".join(str(s) for s in statuses)
        raise DemoClockRefused(f"No round is {wanted}: nothing to move the demo clock to its {field}.")
    return found


def next_round_day() -> tuple[str, datetime]:
    """The next session whose lock is ahead, and the start of its New York day: from then its round is the
    current one (`/v1/rounds/current`) and its reference, the previous session's close, is final, so beat opens it.

    Refused when that round exists already (open, or finished early): there is nothing to open.
    """
    now = clock.now()
    try:
        day = calendar.next_session(on_or_after=now.astimezone(NEW_YORK).date() - timedelta(days=1))
        while calendar.session_times(day=day).lock_utc <= now:
            day = calendar.next_session(on_or_after=day + timedelta(days=1))
    except calendar.OutsideCalendarRange as exc:
        raise DemoClockRefused(f"No next session in the calendar: {exc}") from exc
    code = calendar.code_for(day)
    existing = Round.objects.filter(code=code).first()
    if existing is not None:
        raise DemoClockRefused(f"Round {code} is already {existing.status}; there is no round to open before it.")
    return code, datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)


def move_to(target: str) -> Move:
    """Move the offset forward so the rounds' now is just past the target round's lock_at, close_at or settle_after,
    or (`open`) the start of the next unopened session's day.

    Refused (nothing changed) when that instant is already behind the rounds' now: the clock never goes back.
    """
    require_development()
    if target not in TARGETS:
        raise DemoClockRefused(f"--to takes one of {', '.join(TARGETS)}, not {target!r}.")
    field = TARGETS[target][0]
    if target == "open":
        code, instant = next_round_day()
    else:
        round_obj = target_round(target)
        code, instant = round_obj.code, getattr(round_obj, field)
    before = clock.demo_offset_s()
    shifted = clock.now()
    aim = instant + PAST
    if aim <= shifted and target == "open":
        raise DemoClockRefused(
            f"Round {code} can open at the rounds' time {shifted:%Y-%m-%d %H:%M:%S}Z already: beat opens it within "
            f"a minute (or: manage.py open_round --code {code}); the demo clock stays."
        )
    if aim <= shifted:
        raise DemoClockRefused(
            f"The rounds' clock is at {shifted:%Y-%m-%d %H:%M:%S}Z, already past round {code}'s {field} "
            f"{instant:%Y-%m-%d %H:%M:%S}Z; the demo clock never moves backwards (--reset returns to the real time)."
        )
    after = math.ceil((aim - clock.real_now()).total_seconds())
    after = max(after, before)  # never backwards, even by the sub-second the two readings are apart
    offset_write(after)
    return Move(
        code=code,
        field=field,
        instant=instant,
        offset_before_s=before,
        offset_after_s=after,
        shifted_now=clock.now(),
    )


__all__ = ["DemoClockRefused", "Move", "move_to", "offset_reset", "offset_write", "require_development"]
