"""`deposit --user EMAIL --amount N`: an operator credit (the house manual's emergency credit).

`--amount 0` shows the player's balance and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ledger.currencies import get_currency
from ledger.selectors import user_wallet
from ledger.services import operator_credit
from ops.cli import operator_from_option, user_by_email
from ops.command_lock import command_lock
from ops.errors import ApplicationError


class Command(BaseCommand):
    help = "Credit a player's available balance (operator credit); --amount 0 shows the balance."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="the player's email")
        parser.add_argument("--amount", required=True, type=int, help="minor units (micro USDC for USDC)")
        parser.add_argument("--currency", default=settings.ROUND_CURRENCY)
        parser.add_argument("--reason", default="operator credit from the command line")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")
        parser.add_argument("--reference", help="a reference unique forever (default: a new one)")
        parser.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_by_email(options["user"])
        try:
            currency = get_currency(options["currency"])
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        amount_u = options["amount"]
        if amount_u < 0:
            raise CommandError("--amount must be zero (show the balance) or positive.")
        if amount_u > 0 and not options["dry_run"]:
            actor = operator_from_option(options["operator"])
            reference = options["reference"] or f"operator-credit:{uuid.uuid4()}"
            with command_lock("deposit"):
                try:
                    journal = operator_credit(
                        user=user, amount_u=amount_u, currency=currency.code, actor=actor,
                        reference=reference, reason=options["reason"],
                    )
                except ApplicationError as exc:
                    raise CommandError(exc.detail) from exc
            verb = "already credited (replay)" if journal.replayed else "credited"
            self.stdout.write(f"{verb} {currency.format(amount_u)} to {user.email} (journal {journal.reference})")
        elif amount_u > 0:
            self.stdout.write(f"dry run: would credit {currency.format(amount_u)} to {user.email}")
        self._show_balance(user, currency.code)

    def _show_balance(self, user: Any, code: str) -> None:
        currency = get_currency(code)
        row = next((r for r in user_wallet(user=user) if r["currency"] == code), None)
        available = row["available_u"] if row else 0
        held = row["held_u"] if row else 0
        self.stdout.write(
            f"{user.email} {code}: available {available} ({currency.format(available)}), held {held} ({currency.format(held)})"
        )
