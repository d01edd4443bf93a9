"""`review_payout_event --id N --reason R`: acknowledge a payout webhook that disagreed with our state."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ops.cli import operator_by_email, refusals_as_command_errors
from payouts.services import payout_event_mark_reviewed


class Command(BaseCommand):
    help = "Mark a payout event listed by detect_stuck_finance_jobs as reviewed, with a reason (audited)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--id", type=int, required=True, help="the payout event's id")
        parser.add_argument("--reason", required=True, help="what was found and done")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")

    def handle(self, *args: Any, **options: Any) -> None:
        with refusals_as_command_errors():
            event = payout_event_mark_reviewed(
                event_id=options["id"], acting_user=operator_by_email(options["operator"]), reason=options["reason"]
            )
        self.stdout.write(f"payout event {event.pk} reviewed by {event.reviewed_by}")
