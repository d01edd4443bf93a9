"""`detect_stuck_finance_jobs [--json]`: withdrawals (and deposit webhook events) waiting too long.

Prints one line per stuck item and nothing at all when all is well (exit 0 either way, so a cron
wrapper reports any output). Limits: PAYOUT_STUCK_REQUESTED_AFTER_S (24h), PAYOUT_STUCK_APPROVED_AFTER_S
(1h), PAYOUT_STUCK_SUBMITTED_AFTER_S (2h), WEBHOOK_STUCK_AFTER_S (15m).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from payouts.selectors import stuck_finance_jobs


class Command(BaseCommand):
    help = "List finance work stuck past its age limit; prints nothing when all is well."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON array instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        findings = stuck_finance_jobs()
        if options["json"]:
            self.stdout.write(json.dumps([f.as_dict() for f in findings]))
            return
        for finding in findings:
            self.stdout.write(finding.line())
