"""`check_ledger`: recompute every ledger invariant; exit non-zero with a readable report on a breach."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.models import Account, Entry, Journal
from ledger.reconciliation import invariant_names, ledger_breaches, reconciliation_run


class Command(BaseCommand):
    help = "Check every ledger invariant (journals balance, balances equal entries, ...)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--record",
            action="store_true",
            help="record the run (counted by ledger_imbalance_total); a breach turns payout_freeze on",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["record"]:
            _run, breaches = reconciliation_run()
        else:
            breaches = ledger_breaches()
        names = invariant_names()
        scope = (
            f"{Journal.objects.count()} journals, {Entry.objects.count()} entries, {Account.objects.count()} accounts"
        )
        if breaches:
            for breach in breaches:
                self.stderr.write(f"BREACH {breach}")
            if options["record"]:
                self.stderr.write(
                    "payout_freeze is ON (turned on by this run); two operators must clear it: "
                    'switch payout_freeze clear --reason "…" --operator <you>, then a second operator approves.'
                )
            raise CommandError(f"{len(breaches)} ledger invariant breach(es) over {scope}.")
        self.stdout.write(f"OK: {len(names)} invariants hold over {scope} ({', '.join(names)}).")
