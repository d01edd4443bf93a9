"""`resolve ID confirm_sent|refund_failed|retry --reason R --operator a@`: manual review of a payout.

The same service as `POST /v1/payouts/{id}/resolve` and the admin's buttons (`withdrawal_resolve`):

- `confirm_sent` is refused while the PSP's latest answer about the current attempt is pending or in transit;
  from `payout_submitted` every decision waits for an answer or PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES;
- `confirm_sent` needs a second operator unless the PSP said paid; above the four-eyes threshold every
  decision does. The second operator runs the same line, or `resolve --approve PROPOSAL --reason R --operator b@`
  (their own reason, required);
  `resolve --reject PROPOSAL --reason R --operator b@` drops it.

A refusal exits non-zero with one line and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.approvals import proposals_for_subject
from ops.cli import operator_by_email, proposal_decide, refusals_as_command_errors
from ops.command_lock import command_lock
from ops.models import Proposal
from payouts.models import Withdrawal
from payouts.selectors import withdrawal_subject
from payouts.services import RESOLVE_DECISIONS, RESOLVE_KIND, withdrawal_resolve


class Command(BaseCommand):
    help = "Resolve a failed or unanswered payout (confirm_sent, refund_failed, retry) under maker-checker."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("withdrawal", nargs="?", type=int, help="the withdrawal id")
        parser.add_argument("decision", nargs="?", choices=RESOLVE_DECISIONS)
        parser.add_argument("--approve", type=int, metavar="PROPOSAL", help="apply another operator's proposal")
        parser.add_argument("--reject", type=int, metavar="PROPOSAL", help="reject a pending proposal (with --reason)")
        parser.add_argument("--reason", default="", help="why (kept in the audit log); required")
        parser.add_argument("--operator", help="your email (required)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["approve"] is not None or options["reject"] is not None:
            proposal, operator = proposal_decide(
                approve=options["approve"],
                reject=options["reject"],
                kind=RESOLVE_KIND,
                operator_email=options["operator"],
                reason=options["reason"],
            )
            verb = "rejected" if proposal.state == Proposal.State.REJECTED else "approved and applied"
            self.stdout.write(f"Proposal {proposal.pk} {verb} by {operator.email}.")
            self._show(int(proposal.subject.rsplit(":", 1)[1]))
            return
        if options["withdrawal"] is None or not options["decision"]:
            raise CommandError("Give WITHDRAWAL DECISION, or --approve PROPOSAL / --reject PROPOSAL.")
        operator = operator_by_email(options["operator"])
        with command_lock(RESOLVE_KIND), refusals_as_command_errors():
            withdrawal = withdrawal_resolve(
                withdrawal_id=options["withdrawal"],
                acting_user=operator,
                decision=options["decision"],
                reason=options["reason"],
            )
        pending = [
            p for p in proposals_for_subject(subject=withdrawal_subject(withdrawal.pk)) if p.state == p.State.PENDING
        ]
        if pending:
            self.stdout.write(
                f"Proposal {pending[0].pk}: {options['decision']} withdrawal {withdrawal.pk}, by {operator.email}. "
                f"Nothing moved; a second operator applies it with: resolve --approve {pending[0].pk} "
                "--reason <why> --operator <email>"
            )
        self._show(withdrawal.pk)

    def _show(self, withdrawal_id: int) -> None:
        withdrawal = Withdrawal.objects.get(pk=withdrawal_id)
        self.stdout.write(f"Withdrawal {withdrawal.pk} is {withdrawal.state}.")
