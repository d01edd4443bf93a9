"""`requeue_payouts [--older-than-s N] [--dry-run]`: hand waiting payouts to the worker again.

Run it after lifting a payout freeze or auto-pause: approved withdrawals, and submitted ones whose
PSP call never got an answer, are queued again. A resubmission reuses its PSP idempotency key, so
nothing is paid twice.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.command_lock import command_lock
from payouts.services import payouts_paused, payouts_requeue


class Command(BaseCommand):
    help = "Queue the payout worker again for approved or unanswered payouts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--older-than-s", type=int, default=0, help="only work waiting at least this long")
        parser.add_argument("--dry-run", action="store_true", help="show what would be queued; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        paused = payouts_paused()
        if paused:
            raise CommandError(f"refused: switch {paused} is on; turn it off first.")
        if options["dry_run"]:
            from payouts.selectors import payouts_waiting

            ids = payouts_waiting(older_than_s=options["older_than_s"])
            self.stdout.write(f"dry run: would queue {len(ids)} withdrawal(s): {ids}")
            return
        with command_lock("requeue_payouts"):
            ids = payouts_requeue(older_than_s=options["older_than_s"])
        self.stdout.write(f"queued {len(ids)} withdrawal(s): {ids}")
