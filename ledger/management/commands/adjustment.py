"""`adjustment propose|approve|reject|list`: manual ledger corrections under maker-checker.

Within the four-eyes thresholds of its currencies one operator's proposal is applied at once;
above them a different operator approves it (`adjustment approve --id`).
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.decisions import ADJUSTMENT_KIND, adjustment_propose
from ledger.models import Account
from ops.cli import operator_by_email, proposal_decide, refusals_as_command_errors
from ops.models import Proposal
from ops.validation import amount_u_argument


class Command(BaseCommand):
    help = "Propose a balanced correction, or approve/reject another operator's proposal (maker-checker)."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        propose = sub.add_parser("propose")
        propose.add_argument(
            "--leg",
            nargs=3,
            action="append",
            required=True,
            metavar=("ACCOUNT", "CURRENCY", "AMOUNT_U"),
            help="e.g. --leg house USDC -100 --leg user:<uuid>:available USDC 100",
        )
        for name in ("approve", "reject"):
            p = sub.add_parser(name)
            p.add_argument("--id", type=int, required=True)
        for p in (propose, sub.choices["approve"], sub.choices["reject"]):
            p.add_argument("--reason", required=True)
            p.add_argument("--operator", required=True, help="your email (must be an operator)")
        sub.add_parser("list")

    def handle(self, *args: Any, **options: Any) -> None:
        with refusals_as_command_errors():
            if options["action"] == "list":
                for a in Proposal.objects.filter(kind=ADJUSTMENT_KIND).select_related("proposed_by")[:50]:
                    self.stdout.write(
                        f"{a.pk:>5} {a.state:<9} by {a.proposed_by.email} legs={a.payload.get('legs')} {a.reason}"
                    )
                return
            operator = operator_by_email(options["operator"])
            if options["action"] == "propose":
                legs = [
                    (self._account(name, currency).pk, self._amount(amount))
                    for name, currency, amount in options["leg"]
                ]
                proposal = adjustment_propose(legs=legs, reason=options["reason"], acting_user=operator)
            else:
                approving = options["action"] == "approve"
                proposal, _ = proposal_decide(
                    approve=options["id"] if approving else None,
                    reject=None if approving else options["id"],
                    kind=ADJUSTMENT_KIND,
                    operator_email=options["operator"],
                    reason=options["reason"],
                )
        if proposal.state == Proposal.State.PENDING:
            self.stdout.write(
                f"adjustment {proposal.pk} proposed; above the four-eyes threshold a second operator "
                f"must approve it: adjustment approve --id {proposal.pk}"
            )
            return
        posted = f", journal {proposal.result['journal']}" if proposal.result.get("journal") else ""
        self.stdout.write(f"adjustment {proposal.pk} {proposal.state}{posted}")

    def _account(self, name: str, currency: str) -> Account:
        account = Account.objects.filter(name=name, currency=currency).first()
        if account is None:
            raise CommandError(f"No account {name!r} in {currency}.")
        return account

    def _amount(self, text: str) -> int:
        try:
            return amount_u_argument(text)
        except ArgumentTypeError as exc:
            raise CommandError(str(exc)) from None
