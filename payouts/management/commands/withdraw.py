"""`withdraw --user EMAIL --amount N [--currency USDC] [--provider adyen] DESTINATION [--dry-run]`.

DESTINATION is required, in the rail's own shape (`PayoutProvider.destination_shape`):
`--connected-account acct_…` (stripe), `--transfer-instrument ID` or `--iban IBAN --holder-name NAME`
(adyen), `--destination-address 0x…` (chain, EIP-55).

Requests a withdrawal for the player through the same service as the API: the funds are held and
the withdrawal waits for approval. Refusals (a missing or malformed destination included) exit
non-zero with one readable line, and nothing is held.
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
from payouts.providers import get_provider
from payouts.services import withdrawal_request, withdrawal_validate


def destination_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The destination the options name (empty when none: the rail then refuses it, nothing held)."""
    destination: dict[str, Any] = {}
    if options["destination_address"]:
        destination["address"] = options["destination_address"]
    if options["connected_account"]:
        destination["connected_account"] = options["connected_account"]
    if options["transfer_instrument"]:
        destination["transfer_instrument_id"] = options["transfer_instrument"]
    if options["iban"] or options["holder_name"]:
        destination["bank_account"] = {"iban": options["iban"], "holder_name": options["holder_name"]}
    return destination


class Command(BaseCommand):
    help = "Request a withdrawal for a player (funds are held until an operator approves)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="the player's email")
        parser.add_argument("--amount", required=True, type=amount_u_argument, help="minor units (micro USDC for USDC)")
        parser.add_argument("--currency", default=settings.DEFAULT_CURRENCY)
        parser.add_argument("--provider", default="adyen")
        parser.add_argument("--destination-address", default="", help="chain: the player's EIP-55 address")
        parser.add_argument("--connected-account", default="", help="stripe: the player's connected account acct_…")
        parser.add_argument("--transfer-instrument", default="", help="adyen: the player's transfer instrument id")
        parser.add_argument("--iban", default="", help="adyen: a bank account's IBAN (with --holder-name)")
        parser.add_argument("--holder-name", default="", help="adyen: the bank account holder's full name")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")
        parser.add_argument("--dry-run", action="store_true", help="check and show what would happen; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_by_email(options["user"])
        amount_u, code, provider = options["amount"], options["currency"], options["provider"]
        destination = destination_from_options(options)
        with refusals_as_command_errors():
            destination = withdrawal_validate(
                user=user, amount_u=amount_u, currency=code, provider=provider, destination=destination
            )
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
            f"withdrawal {withdrawal.pk} requested: {currency.format(amount_u)} of {user.email} via {provider} "
            f"to {get_provider(provider).destination_label(withdrawal.destination)}; funds held, waiting for approval"
        )
