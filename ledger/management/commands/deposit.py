"""`deposit`: an operator credit (the house manual's emergency credit), under maker-checker.

- `deposit --user EMAIL --amount N [--currency C] --reason R --operator a@`: *proposes* the credit;
  nothing moves.
- `deposit --approve ID --reason R --operator b@`: a second operator applies it, with their own reason (on a
  developer's machine, `ENVIRONMENT=development`, the proposer may approve their own). `--reject ID --reason R
  --operator b@`.
- `deposit --user EMAIL --amount 0` shows the player's balance and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ledger.currencies import get_currency
from ledger.decisions import CREDIT_KIND, operator_credit_propose
from ledger.selectors import user_wallet
from ops.cli import operator_by_email, proposal_decide, refusals_as_command_errors, user_by_email
from ops.command_lock import command_lock
from ops.validation import amount_u_argument


class Command(BaseCommand):
    help = "Propose an operator credit to a player (a second operator approves with --approve); --amount 0 shows the balance."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", help="the player's email")
        parser.add_argument("--amount", type=amount_u_argument, help="minor units (micro USDC for USDC)")
        parser.add_argument("--currency", default=settings.ROUND_CURRENCY)
        parser.add_argument("--reason", default="", help="why (required to propose, --approve or --reject)")
        parser.add_argument("--operator", help="your email (an active operator)")
        parser.add_argument("--reference", default="", help="a reference unique forever (default: from the proposal)")
        parser.add_argument("--approve", type=int, metavar="ID", help="apply another operator's proposed credit")
        parser.add_argument("--reject", type=int, metavar="ID", help="reject a proposed credit")
        parser.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["approve"] is not None or options["reject"] is not None:
            self._decide(options)
            return
        if not options["user"] or options["amount"] is None:
            raise CommandError("Give --user and --amount, or --approve ID / --reject ID.")
        user = user_by_email(options["user"])
        with refusals_as_command_errors():
            currency = get_currency(options["currency"])
        amount_u = options["amount"]
        if amount_u < 0:
            raise CommandError("--amount must be zero (show the balance) or positive.")
        if amount_u > 0 and options["dry_run"]:
            self.stdout.write(f"dry run: would propose crediting {currency.format(amount_u)} to {user.email}")
        elif amount_u > 0:
            operator = operator_by_email(options["operator"])
            with command_lock("deposit"), refusals_as_command_errors():
                proposal = operator_credit_propose(
                    user=user,
                    amount_u=amount_u,
                    currency=currency.code,
                    reason=options["reason"],
                    acting_user=operator,
                    reference=options["reference"],
                )
            self.stdout.write(
                f"Proposal {proposal.pk}: credit {currency.format(amount_u)} to {user.email}, by {operator.email}. "
                f"Nothing moved; a second operator applies it with: deposit --approve {proposal.pk} --reason <why> --operator <email>"
            )
        self._show_balance(user, currency.code)

    def _decide(self, options: dict[str, Any]) -> None:
        proposal, operator = proposal_decide(
            approve=options["approve"],
            reject=options["reject"],
            kind=CREDIT_KIND,
            operator_email=options["operator"],
            reason=options["reason"],
        )
        if proposal.state == proposal.State.REJECTED:
            self.stdout.write(f"Proposal {proposal.pk} rejected by {operator.email}; nothing moved.")
            return
        self.stdout.write(
            f"Proposal {proposal.pk} approved by {operator.email} (proposed by "
            f"{proposal.proposed_by.email}): journal {proposal.result.get('journal')}"
        )

    def _show_balance(self, user: Any, code: str) -> None:
        currency = get_currency(code)
        row = next((r for r in user_wallet(user=user) if r["currency"] == code), None)
        available = row["available_u"] if row else 0
        held = row["held_u"] if row else 0
        self.stdout.write(
            f"{user.email} {code}: available {available} ({currency.format(available)}), held {held} ({currency.format(held)})"
        )
