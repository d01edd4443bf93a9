"""`withdraw --user EMAIL --amount N [--currency USDC] [--provider adyen] [--destination-address 0x…] [--dry-run]`.

Requests a withdrawal for the player through the same service as the API: the funds are held and
the withdrawal waits for approval. Refusals exit non-zero with one readable line.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ledger.currencies import get_currency
from ledger.models import Account
from ops.cli import operator_from_option, refusals_as_command_errors, user_by_email
from ops.command_lock import command_lock
from ops.validation import amount_u_argument
from payouts.services import withdrawal_request, withdrawal_validate


class Command(BaseCommand):
    help = "Request a withdrawal for a player (funds are held until an operator approves)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="the player's email")
        parser.add_argument("--amount", required=True, type=amount_u_argument, help="minor units (micro USDC for USDC)")
        parser.add_argument("--currency", default=settings.DEFAULT_CURRENCY)
        parser.add_argument("--provider", default="adyen")
        parser.add_argument("--destination-address", default="", help="chain: the player's EIP-55 address")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")
        parser.add_argument("--dry-run", action="store_true", help="check and show what would happen; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_by_email(options["user"])
        amount_u, code, provider = options["amount"], options["currency"], options["provider"]
        destination = {"address": options["destination_address"]} if options["destination_address"] else None
        with refusals_as_command_errors():
            withdrawal_validate(user=user, amount_u=amount_u, currency=code, provider=provider, destination=destination)
            currency = get_currency(code)
            if options["dry_run"]:
                available = (
                    Account.objects.filter(owner=user, currency=code, kind=Account.Kind.USER_AVAILABLE)
                    .values_list("balance_u", flat=True)
                    .first()
                    or 0
                )
                if available < amount_u:
                    raise CommandError(
                        f"refused: {user.email} has {currency.format(available)} available; "
                        f"{currency.format(amount_u)} requested. Nothing was changed."
                    )
                self.stdout.write(
                    f"dry run: would hold {currency.format(amount_u)} of {user.email} "
                    f"for a withdrawal via {provider} (available {currency.format(available)}); nothing changed"
                )
                return
            actor = operator_from_option(options["operator"])
            with command_lock("withdraw"):
                withdrawal = withdrawal_request(
                    user=user,
                    amount_u=amount_u,
                    currency=code,
                    provider=provider,
                    destination=destination,
                    acting_user=actor,
                )
        self.stdout.write(
            f"withdrawal {withdrawal.pk} requested: {currency.format(amount_u)} of {user.email} via {provider}; "
            "funds held, waiting for approval"
        )
