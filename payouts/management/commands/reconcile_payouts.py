"""`reconcile_payouts [--withdrawal ID] [--older-than-minutes N] [--dry-run]`: ask the PSP about payouts with no final answer.

Without `--withdrawal`, every payout still `payout_submitted` after PAYOUT_RECONCILE_AFTER_MINUTES (beat does
this every few minutes). A final answer applies the same transition a webhook would; an unknown or
contradictory one goes to manual review with the PSP's answer as evidence. Prints one line per payout.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import refusals_as_command_errors
from ops.command_lock import command_lock
from payouts.reconciliation import payout_reconcile, payouts_reconcile


class Command(BaseCommand):
    help = "Ask the PSP for the status of payouts with no final answer and apply it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--withdrawal", type=int, help="only this withdrawal (any age)")
        parser.add_argument(
            "--older-than-minutes",
            type=float,
            default=None,
            help="only payouts submitted at least this long ago (default: the setting)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="ask the PSP and show what would happen; change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with command_lock("reconcile_payouts"), refusals_as_command_errors():
            if options["withdrawal"] is not None:
                results = [payout_reconcile(withdrawal_id=options["withdrawal"], dry_run=options["dry_run"])]
            else:
                minutes = options["older_than_minutes"]
                results = payouts_reconcile(
                    older_than_s=None if minutes is None else int(minutes * 60), dry_run=options["dry_run"]
                )
        for result in results:
            self.stdout.write(result.line())
        if not results:
            self.stdout.write("nothing to reconcile")
        failed = [r for r in results if r.answer == "error"]
        if failed:
            raise CommandError(f"could not ask the PSP about {len(failed)} payout(s); see the lines above")
