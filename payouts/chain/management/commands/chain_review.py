"""`chain_review --tx HASH | --deposit HASH:INDEX --reason R --operator EMAIL`: acknowledge a flagged on-chain item."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_by_email, refusals_as_command_errors
from payouts.chain.deposits import chain_deposit_mark_reviewed
from payouts.chain.models import ChainDeposit, ChainTransfer
from payouts.chain.payouts import chain_transfer_mark_reviewed


class Command(BaseCommand):
    help = "Mark an on-chain transfer or deposit listed by detect_stuck_finance_jobs as reviewed (audited)."

    def add_arguments(self, parser: Any) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--tx", help="the payout transaction's hash")
        target.add_argument("--deposit", help="the deposit as <tx hash>:<log index>")
        parser.add_argument("--reason", required=True, help="what was found and done")
        parser.add_argument("--operator", required=True, help="the operator's email (recorded as the actor)")

    def handle(self, *args: Any, **options: Any) -> None:
        operator = operator_by_email(options["operator"])
        with refusals_as_command_errors():
            if options["tx"]:
                row = ChainTransfer.objects.filter(tx_hash=options["tx"].lower()).first()
                if row is None:
                    raise CommandError(f"No on-chain transfer {options['tx']}.")
                chain_transfer_mark_reviewed(transfer_id=row.pk, acting_user=operator, reason=options["reason"])
            else:
                tx_hash, _, index = options["deposit"].partition(":")
                deposit = ChainDeposit.objects.filter(tx_hash=tx_hash.lower(), log_index=int(index or -1)).first()
                if deposit is None:
                    raise CommandError(f"No on-chain deposit {options['deposit']}.")
                chain_deposit_mark_reviewed(deposit_id=deposit.pk, acting_user=operator, reason=options["reason"])
        self.stdout.write(f"{options['tx'] or options['deposit']} reviewed by {operator.email}")
