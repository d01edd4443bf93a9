"""`demo_clock`: show or move the rounds' demo clock of `make run` (development only).

- `demo_clock`: the real time, the offset, the rounds' (shifted) time, and the unsettled rounds' lock_at, close_at
  and settle_after.
- `demo_clock --to lock|close|settle`: move the rounds' time just past the open (or locked) round's lock_at,
  close_at or settle_after; beat (every minute) or `lock_round` / `settle_round --result AUTO` then act on it.
- `demo_clock --to open`: when no round takes bets (between a session's lock and the next day), move to the start
  (New York) of the next session's day, when beat opens its round and it is the current one.
- `demo_clock --reset`: back to the real time.

The clock never moves backwards (refused, one line) but by `--reset`. Anywhere but ENVIRONMENT=development:
refused, one line, exit 1; the rounds there run on the real time and never read the offset (`rounds.clock`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from rounds import clock
from rounds.demo_clock import TARGETS, DemoClockRefused, move_to, offset_reset, require_development
from rounds.models import Round


def _at(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d %H:%M:%S}Z"


class Command(BaseCommand):
    help = "Show or move the rounds' demo clock (development only): --to open|lock|close|settle, or --reset."

    def add_arguments(self, parser: Any) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--to",
            choices=list(TARGETS),
            help="just past the open round's lock, close or settle; open: the next session's day",
        )
        group.add_argument("--reset", action="store_true", help="remove the offset: the rounds' real time again")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            require_development()
            if options["reset"]:
                before = offset_reset()
                self.stdout.write(f"demo clock reset (offset was {before} s): the rounds run on the real time.")
                return
            if options["to"]:
                move = move_to(options["to"])
                self.stdout.write(
                    f"demo clock moved {move.offset_after_s - move.offset_before_s} s forward (offset "
                    f"{move.offset_after_s} s): the rounds' time is {_at(move.shifted_now)}, just past round "
                    f"{move.code}'s {move.field} {_at(move.instant)}"
                )
            self._show()
        except (DemoClockRefused, clock.DemoClockError) as exc:
            raise CommandError(str(exc)) from None

    def _show(self) -> None:
        """The clocks, and the times of each round not settled yet."""
        self.stdout.write(f"real time:    {_at(clock.real_now())}")
        self.stdout.write(f"offset:       {clock.demo_offset_s()} s ({clock.offset_path()})")
        self.stdout.write(f"rounds' time: {_at(clock.now())}")
        unsettled = Round.objects.filter(status__in=Round.UNSETTLED).order_by("code")
        if not unsettled:
            self.stdout.write("no round is open or locked")
        for r in unsettled:
            self.stdout.write(
                f"round {r.code} {r.status}: lock_at {_at(r.lock_at)}  close_at {_at(r.close_at)}  "
                f"settle_after {_at(r.settle_after)}"
            )
