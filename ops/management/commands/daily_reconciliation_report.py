"""`daily_reconciliation_report [--date YYYY-MM-DD] [--output FILE]`: invariants, TVL, flows, queues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ops.console.report import daily_report, render_w1_markdown
from ops.db_router import read_from_replica
from ops.reports import daily_reconciliation_report, parse_day


class Command(BaseCommand):
    help = "Write the daily reconciliation report (Markdown); exit 1 when a ledger invariant is broken."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--date", help="YYYY-MM-DD (UTC); default today")
        parser.add_argument("--output", help="write to this file instead of standard output")
        parser.add_argument(
            "--template",
            choices=["daily", "w1"],
            default="daily",
            help="w1: the onboarding pack's week-1 layout (date, invariants, deposits, withdrawals by "
            "state, payouts, round results, open risks with owners), as the admin's report page "
            "downloads it",
        )
        parser.add_argument("--w1", action="store_const", const="w1", dest="template", help="same as --template w1")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = parse_day(options["date"]) if options["date"] else timezone.now().date()
        except ValueError as exc:
            raise CommandError(f"--date must be YYYY-MM-DD, not {options['date']!r}.") from exc
        with read_from_replica():
            if options["template"] == "w1":
                w1 = daily_report(day=day)
                report, ok = render_w1_markdown(w1), w1.ok
            else:
                report, ok = daily_reconciliation_report(day=day)
        if options["output"]:
            Path(options["output"]).write_text(report)
            self.stdout.write(f"wrote {options['output']}")
        else:
            self.stdout.write(report)
        if not ok:
            raise CommandError("ledger invariant breach: see section 1 of the report")
