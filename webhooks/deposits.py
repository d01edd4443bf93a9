"""Deposits a player starts: the PSP payment start, and the development simulator's confirmed deposit.

No money moves when a deposit starts: the credit comes with the provider's confirmation webhook
(`webhooks.receiving`, then `webhooks.processing`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from ledger.services import user_account
from ops.actors import require_player
from ops.audit import audit_record

from .errors import DepositProviderFailed, UnsupportedCurrency, UnsupportedProvider
from .fields import checked_amount_u, checked_currency, checked_player
from .models import Deposit, Provider
from .processing import webhook_event_process
from .providers import PSP_CURRENCIES, ProviderCallFailed, payment_start
from .receiving import signed_deposit_receive

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)


def deposit_start(*, user: User, provider: str, amount_u: int, currency: str, return_url: str = "") -> Deposit:
    """Create a pending deposit and start its payment with the PSP (idempotency key = our reference).

    No money moves here: the credit comes with the provider's confirmation webhook. The deposit row
    commits first, then the PSP is called with no transaction open (the view is
    `@idempotent(atomic=False)`). If the PSP fails, the deposit is marked failed and
    `DepositProviderFailed` (502) is raised; the Idempotency-Key is released so the player may retry.
    """
    require_player(user)
    if provider not in PSP_CURRENCIES:
        raise UnsupportedProvider(f"Deposits go through one of {', '.join(sorted(PSP_CURRENCIES))}, not {provider!r}.")
    currency = checked_currency(currency)
    if currency not in PSP_CURRENCIES[provider]:
        raise UnsupportedCurrency(
            f"{provider} takes {', '.join(sorted(PSP_CURRENCIES[provider]))}; {currency} is not offered."
        )
    amount_u = checked_amount_u(amount_u)
    with transaction.atomic():
        deposit = Deposit.objects.create(
            provider=provider, reference=str(uuid.uuid4()), user=user, amount_u=amount_u, currency=currency
        )
        audit_record(
            actor=user,
            action="deposits.start",
            obj=deposit,
            to_state=deposit.status,
            data={"provider": provider, "amount_u": amount_u, "currency": currency, "reference": deposit.reference},
        )
    try:
        started = payment_start(deposit=deposit, return_url=return_url)
    except ProviderCallFailed as exc:
        Deposit.objects.filter(pk=deposit.pk, status=Deposit.Status.PENDING).update(
            status=Deposit.Status.FAILED, failure_reason=exc.detail
        )
        logger.warning("deposit %s: %s", deposit.reference, exc.detail)
        raise DepositProviderFailed(
            f"The payment provider could not start this deposit ({provider}); nothing was charged. Retry later."
        ) from exc
    Deposit.objects.filter(pk=deposit.pk).update(psp_id=started.psp_id, psp_client_data=started.client_data)
    deposit.refresh_from_db()
    return deposit


@dataclass(frozen=True)
class SimulatedDeposit:
    user: Any
    currency: str
    amount_u: int
    reference: str
    status: str
    duplicate: bool
    balance_u: int


def simulated_deposit(*, user_id: Any, amount_u: Any, currency: Any, reference: Any = None) -> SimulatedDeposit:
    """The house manual's dev deposit: a confirmed deposit through the same path, processed at once.

    `amount_u` 0 only reads the balance.
    """
    from ledger.selectors import account_balance

    amount_u = checked_amount_u(amount_u, allow_zero=True)
    currency = checked_currency(currency)
    user = checked_player(user_id)
    if amount_u == 0:
        balance = account_balance(account=user_account(user=user, currency=currency))
        return SimulatedDeposit(user, currency, 0, "", "balance", False, balance)
    payload = {
        "reference": str(reference or uuid.uuid4()),
        "user_id": str(user.public_id),
        "amount_u": amount_u,
        "currency": currency,
    }
    received = signed_deposit_receive(provider=Provider.SIMULATION, payload=payload, headers={}, enqueue=False)
    event = webhook_event_process(event_id=received.event.pk)
    balance = account_balance(account=user_account(user=user, currency=currency))
    return SimulatedDeposit(user, currency, amount_u, payload["reference"], event.status, received.duplicate, balance)
