"""`adjustment propose|approve|reject|list`: manual ledger corrections with a second operator."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.adjustments import adjustment_decide, adjustment_propose
from ledger.models import Account, Adjustment
from ops.cli import user_by_email
from ops.errors import ApplicationError


class Command(BaseCommand):
    help = "Propose a balanced correction, or approve/reject another operator's proposal (maker-checker)."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        propose = sub.add_parser("propose")
        propose.add_argument("--leg", nargs=3, action="append", required=True,
                             metavar=("ACCOUNT", "CURRENCY", "AMOUNT_U"),
                             help="e.g. --leg house USDC -100 --leg user:<uuid>:available USDC 100")
        for name in ("approve", "reject"):
            p = sub.add_parser(name)
            p.add_argument("--id", type=int, required=True)
        for p in (propose, sub.choices["approve"], sub.choices["reject"]):
            p.add_argument("--reason", required=True)
            p.add_argument("--operator", required=True, help="your email (must be an operator)")
        sub.add_parser("list")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "list":
                for a in Adjustment.objects.order_by("-id")[:50]:
                    self.stdout.write(f"{a.pk:>5} {a.status:<9} by {a.proposed_by.email} legs={a.legs} {a.reason}")
                return
            operator = user_by_email(options["operator"])
            if options["action"] == "propose":
                legs = [(self._account(name, currency).pk, self._amount(amount)) for name, currency, amount in options["leg"]]
                adjustment = adjustment_propose(legs=legs, reason=options["reason"], acting_user=operator)
                self.stdout.write(f"adjustment {adjustment.pk} proposed; a second operator must approve it")
                return
            adjustment = adjustment_decide(adjustment_id=options["id"], approve=options["action"] == "approve",
                                           reason=options["reason"], acting_user=operator)
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        posted = f", journal {adjustment.journal.reference}" if adjustment.journal else ""
        self.stdout.write(f"adjustment {adjustment.pk} {adjustment.status}{posted}")

    def _account(self, name: str, currency: str) -> Account:
        account = Account.objects.filter(name=name, currency=currency).first()
        if account is None:
            raise CommandError(f"No account {name!r} in {currency}.")
        return account

    def _amount(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise CommandError(f"Amounts are whole minor units, not {text!r}.") from None
