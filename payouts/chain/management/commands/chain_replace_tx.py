"""`chain_replace_tx --tx HASH --max-fee-wei N --tip-wei N --reason R --operator EMAIL`: replace a stuck payout.

A four-eyes decision: the first operator's run proposes it (nothing is signed); a different operator
running the same command with the same fees approves it, and only then is a new transaction with the same
nonce, recipient and amount and higher fees signed and broadcast. At most one of the two can ever be mined.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_by_email, refusals_as_command_errors
from payouts.chain.models import ChainTransfer
from payouts.chain.payouts import chain_transfer_replace


class Command(BaseCommand):
    help = "Replace a stuck on-chain payout transaction (same nonce, higher fees), as a named operator."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tx", required=True, help="the stuck transaction's hash")
        parser.add_argument("--max-fee-wei", type=int, required=True)
        parser.add_argument("--tip-wei", type=int, required=True)
        parser.add_argument("--reason", required=True)
        parser.add_argument("--operator", required=True, help="the operator's email (recorded as the actor)")

    def handle(self, *args: Any, **options: Any) -> None:
        operator = operator_by_email(options["operator"])
        row = ChainTransfer.objects.filter(tx_hash=options["tx"].lower()).first()
        if row is None:
            raise CommandError(f"No on-chain transfer {options['tx']}.")
        with refusals_as_command_errors():
            proposal = chain_transfer_replace(
                transfer_id=row.pk,
                acting_user=operator,
                max_fee_per_gas_wei=options["max_fee_wei"],
                max_priority_fee_per_gas_wei=options["tip_wei"],
                reason=options["reason"],
            )
        if proposal.state == proposal.State.APPLIED:
            self.stdout.write(f"nonce {row.nonce}: {row.tx_hash} replaced by {proposal.result['replacement_tx_hash']}")
        else:
            self.stdout.write(
                f"proposal {proposal.pk} recorded ({proposal.state}); a second operator must approve it "
                "(run the same command, or approve the proposal)"
            )
