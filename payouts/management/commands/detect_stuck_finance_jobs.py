"""`detect_stuck_finance_jobs [--json]`: finance work waiting too long.

Prints one line per stuck item and nothing at all when all is well; exits 1 when something is stuck
(so a cron job or an alert can use the exit status). Limits, in minutes (settings / environment):
STUCK_REQUESTED_AFTER_MINUTES (1440), STUCK_APPROVED_AFTER_MINUTES (5), STUCK_IN_FLIGHT_AFTER_MINUTES (5: a
payout submitted with no PSP answer), STUCK_UNCONFIRMED_AFTER_MINUTES (1440: accepted, never confirmed),
STUCK_WEBHOOK_AFTER_MINUTES (5), STUCK_ROUND_AFTER_MINUTES (90 past the settle time). Payout webhooks that
disagree with our state are listed until reviewed.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.stuck import stuck_jobs


class Command(BaseCommand):
    help = "List finance work stuck past its age limit; prints nothing when all is well, exits 1 otherwise."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON array instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        findings = stuck_jobs()
        if options["json"]:
            self.stdout.write(json.dumps([f.as_dict() for f in findings]))
        else:
            for finding in findings:
                self.stdout.write(finding.line())
        if findings:
            raise CommandError(f"{len(findings)} stuck item(s)", returncode=1)
