"""`stub_pay DEPOSIT_ID [--decline]`: pay (or decline) a pending deposit at the local PSP stub (development only).

DEPOSIT_ID is the `id` in the answer of `POST /v1/deposits`. The command finds the deposit's PSP object (its
PaymentIntent or Checkout session id) and asks the stub to settle it, exactly as the stub's pay page does
(`POST /_stub/pay/<psp_id>`); the stub then sends the signed payment webhook to the back office by itself.
It prints one line: the outcome and the webhook's HTTP status. Anywhere but ENVIRONMENT=development it refuses:
a real PSP has no such call. See docs/ops/local_psp.md.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from webhooks.models import Deposit, Provider

STUB_TIMEOUT_S = 30.0  # the stub answers once the back office has answered its webhook
BASES: dict[str, str] = {Provider.STRIPE: "STRIPE_API_BASE", Provider.ADYEN: "ADYEN_API_BASE"}


class Command(BaseCommand):
    help = "Pay (or --decline) a pending Stripe or Adyen deposit at the local PSP stub; development only."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("deposit_id", help="the deposit's id, as in the answer of POST /v1/deposits")
        parser.add_argument("--decline", action="store_true", help="decline the payment instead of paying it")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.ENVIRONMENT != "development":
            raise CommandError(
                f"stub_pay is for development only (ENVIRONMENT is {settings.ENVIRONMENT!r}): it pays at the local "
                "PSP stub. Nothing was changed."
            )
        deposit = _deposit(str(options["deposit_id"]))
        outcome = "failed" if options["decline"] else "succeeded"
        answer = _settle(_stub_origin(deposit), deposit.psp_id, outcome)
        webhook = answer.get("webhook") or {}
        line = (
            f"deposit {deposit.public_id}: {answer.get('outcome')} at the stub ({deposit.provider} {deposit.psp_id}); "
            f"{answer.get('event')} webhook answered HTTP {webhook.get('status_code')}"
        )
        if not 200 <= int(webhook.get("status_code") or 0) < 300:
            raise CommandError(f"{line}: {str(webhook.get('body', ''))[:200]}")
        self.stdout.write(line)


def _deposit(deposit_id: str) -> Deposit:
    """The pending Stripe or Adyen deposit with this public id, or a one-line refusal."""
    try:
        public_id = uuid.UUID(deposit_id.strip())
    except ValueError:
        raise CommandError(f"{deposit_id[:60]!r} is not a deposit id (the id in POST /v1/deposits' answer).") from None
    deposit = Deposit.objects.filter(public_id=public_id).first()
    if deposit is None:
        raise CommandError(f"No deposit with id {public_id}.")
    if deposit.provider not in BASES:
        raise CommandError(f"Deposit {public_id} is a {deposit.provider} deposit: only stripe and adyen are paid here.")
    if deposit.status != Deposit.Status.PENDING:
        raise CommandError(f"Deposit {public_id} is {deposit.status}, not pending. Nothing was changed.")
    if not deposit.psp_id:
        raise CommandError(f"Deposit {public_id} has no PSP payment (its start failed). Nothing was changed.")
    return deposit


def _stub_origin(deposit: Deposit) -> str:
    """Where the deposit's SDK points (the stub's scheme, host and port): the pay call goes there too."""
    name = BASES[deposit.provider]
    base = urlsplit(str(getattr(settings, name)))
    if not base.scheme or not base.netloc:
        raise CommandError(f"{name} is not set: there is no local PSP stub to pay at. Nothing was changed.")
    return f"{base.scheme}://{base.netloc}"


def _settle(origin: str, psp_id: str, outcome: str) -> dict[str, Any]:
    """POST the outcome to the stub's pay endpoint and return its answer, or a one-line refusal."""
    url = f"{origin}/_stub/pay/{psp_id}"
    try:
        response = requests.post(url, json={"outcome": outcome}, timeout=STUB_TIMEOUT_S)
    except requests.RequestException as exc:
        raise CommandError(
            f"Cannot reach the local PSP stub at {origin} ({type(exc).__name__}); is `make run` up?"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict) or (response.status_code != 200 and "webhook" not in answer):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise CommandError(f"The PSP stub refused: HTTP {response.status_code}: {error or response.text[:200]}")
    if response.status_code != 200:  # settled, but the webhook did not reach the back office
        raise CommandError(f"The PSP stub settled {psp_id} but {answer.get('error', 'its webhook failed')}")
    return answer
