"""Payout rails behind one interface: `PayoutProvider.submit(*, withdrawal, idempotency_key)`.

Each provider calls its PSP with our idempotency key, so calling twice with one key pays once,
and classifies the answer into a `SubmitResult`:

* ACCEPTED: the PSP took the payout (paid comes later, by webhook);
* DECLINED: the PSP refused it for good (funds stay held, manual review);
* AMBIGUOUS: we cannot know whether it happened (timeout); retry only with the same key;
* ERROR: a transient failure where nothing happened (5xx, connection refused); safe to retry;
* REFUSED: a request or configuration error (bad key, bad request); a retry will not help.

Add a rail (e.g. on-chain USDC) by subclassing `PayoutProvider` and calling `register_provider`.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from django.conf import settings

from .errors import UnknownProvider
from .models import Withdrawal

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    AMBIGUOUS = "ambiguous"
    ERROR = "error"
    REFUSED = "refused"


@dataclass(frozen=True)
class SubmitResult:
    """What the PSP said about one submission."""

    outcome: Outcome
    psp_reference: str = ""
    detail: str = ""

    @property
    def retryable(self) -> bool:
        """Whether retrying with the same idempotency key may help (never pays twice)."""
        return self.outcome in (Outcome.AMBIGUOUS, Outcome.ERROR)


def provider_timeout_s() -> float:
    """Client timeout for PSP calls, in seconds (short: a payout worker must not hang)."""
    return float(getattr(settings, "PAYOUT_PROVIDER_TIMEOUT_S", DEFAULT_TIMEOUT_S))


class PayoutProvider:
    """A payout rail. Subclasses implement `submit`; it must never raise for a PSP answer."""

    name: ClassVar[str] = ""

    def submit(self, *, withdrawal: Withdrawal, idempotency_key: str) -> SubmitResult:
        raise NotImplementedError

    def validate_request(self, *, currency: str, destination: Any) -> None:
        """Refuse, at request time, a currency or destination this rail can never pay (raise an ApplicationError)."""


class AdyenTransfersProvider(PayoutProvider):
    """Adyen Balance Platform Transfers API (`POST /transfers`) through the official SDK."""

    name = "adyen"

    def _api(self) -> Any:
        import Adyen

        adyen = Adyen.Adyen(
            xapikey=settings.ADYEN_API_KEY,
            platform=getattr(settings, "ADYEN_PLATFORM", "test"),  # "live" in production
            http_timeout=provider_timeout_s(),
        )
        api = adyen.transfers.transfers_api
        base = getattr(settings, "ADYEN_API_BASE", "")
        if base:
            api.baseUrl = base.rstrip("/")
        return api

    def request_body(self, *, withdrawal: Withdrawal, idempotency_key: str) -> dict[str, Any]:
        """Build the transfer request; `reference` carries our idempotency key back in webhooks.

        The destination is the player's `counterparty` (Adyen's format) or a `transfer_instrument_id`.
        """
        destination = withdrawal.destination or {}
        counterparty = destination.get("counterparty") or {
            "transferInstrumentId": str(
                destination.get("transfer_instrument_id") or getattr(settings, "ADYEN_TRANSFER_INSTRUMENT_ID", "")
            )
        }
        return {
            "amount": {"currency": withdrawal.currency, "value": withdrawal.amount_u},
            "balanceAccountId": settings.ADYEN_BALANCE_ACCOUNT_ID,
            "category": "bank",
            "counterparty": counterparty,
            "reference": idempotency_key,
            "referenceForBeneficiary": f"withdrawal {withdrawal.pk}",
            "description": f"Withdrawal {withdrawal.pk}",
        }

    def submit(self, *, withdrawal: Withdrawal, idempotency_key: str) -> SubmitResult:
        from Adyen.exceptions import (
            AdyenAPICommunicationError,
            AdyenAPIResponseError,
            AdyenAPIUnprocessableEntity,
            AdyenError,
        )

        body = self.request_body(withdrawal=withdrawal, idempotency_key=idempotency_key)
        try:
            result = self._api().transfer_funds(body, idempotency_key=idempotency_key)
        except requests.Timeout as exc:
            return SubmitResult(Outcome.AMBIGUOUS, detail=f"timeout: {exc}"[:500])
        except requests.ConnectionError as exc:
            # A connection that dropped mid-request may have reached the PSP: treat as ambiguous.
            return SubmitResult(Outcome.AMBIGUOUS, detail=f"connection error: {exc}"[:500])
        except AdyenAPIUnprocessableEntity as exc:
            refused = _adyen_problem(exc).get("response") or {}
            return SubmitResult(
                Outcome.DECLINED, psp_reference=str(refused.get("id", "")), detail=_adyen_detail(exc)
            )
        except AdyenAPICommunicationError as exc:
            if exc.status_code in (500, 502, 503, 504) or not exc.status_code:
                return SubmitResult(Outcome.ERROR, detail=_adyen_detail(exc))
            return SubmitResult(Outcome.REFUSED, detail=_adyen_detail(exc))
        except AdyenAPIResponseError as exc:
            if exc.status_code in (429, 502, 503, 504):
                return SubmitResult(Outcome.ERROR, detail=_adyen_detail(exc))
            return SubmitResult(Outcome.REFUSED, detail=_adyen_detail(exc))
        except AdyenError as exc:
            return SubmitResult(Outcome.REFUSED, detail=_adyen_detail(exc))
        transfer = result.message or {}
        status = str(transfer.get("status", ""))
        if status in ("refused", "failed", "error"):
            return SubmitResult(Outcome.DECLINED, psp_reference=str(transfer.get("id", "")), detail=status)
        return SubmitResult(Outcome.ACCEPTED, psp_reference=str(transfer.get("id", "")), detail=status)


def _adyen_problem(exc: Any) -> dict[str, Any]:
    try:
        body = json.loads(exc.raw_response or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _adyen_detail(exc: Any) -> str:
    problem = _adyen_problem(exc)
    text = problem.get("detail") or problem.get("message") or str(exc)
    return f"HTTP {exc.status_code}: {text}"[:500]


class StripePayoutProvider(PayoutProvider):
    """Stripe Payouts (`POST /v1/payouts`) through the official SDK's `StripeClient`."""

    name = "stripe"

    def _client(self) -> Any:
        import stripe

        kwargs: dict[str, Any] = {
            "http_client": stripe.RequestsClient(timeout=provider_timeout_s()),
            "max_network_retries": 0,  # the payout worker decides about retries
        }
        base = getattr(settings, "STRIPE_API_BASE", "")
        if base:
            kwargs["base_addresses"] = {"api": base.rstrip("/")}
        return stripe.StripeClient(settings.STRIPE_API_KEY, **kwargs)

    def submit(self, *, withdrawal: Withdrawal, idempotency_key: str) -> SubmitResult:
        import stripe

        params: dict[str, Any] = {
            "amount": withdrawal.amount_u,
            "currency": withdrawal.currency.lower(),
            "description": f"Withdrawal {withdrawal.pk}",
            "metadata": {"withdrawal_id": str(withdrawal.pk), "idempotency_key": idempotency_key},
        }
        destination = (withdrawal.destination or {}).get("bank_account") or (withdrawal.destination or {}).get("id")
        if destination:
            params["destination"] = str(destination)  # the connected bank account or card (ba_..., card_...)
        try:
            payout = self._client().v1.payouts.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.APIConnectionError as exc:
            # Timeouts and dropped connections: the payout may exist. Retry with the same key only.
            return SubmitResult(Outcome.AMBIGUOUS, detail=f"connection: {exc.user_message or exc}"[:500])
        except stripe.RateLimitError as exc:
            return SubmitResult(Outcome.ERROR, detail=f"rate limited: {exc.user_message}"[:500])
        except stripe.APIError as exc:
            return SubmitResult(Outcome.ERROR, detail=f"HTTP {exc.http_status}: {exc.user_message}"[:500])
        except (stripe.CardError, stripe.InvalidRequestError) as exc:
            if exc.code in ("balance_insufficient", "account_closed", "no_account", "invalid_account_number",
                            "debit_not_authorized", "bank_account_restricted", "insufficient_funds"):
                return SubmitResult(Outcome.DECLINED, detail=f"{exc.code}: {exc.user_message}"[:500])
            return SubmitResult(Outcome.REFUSED, detail=f"{exc.code}: {exc.user_message}"[:500])
        except stripe.StripeError as exc:
            return SubmitResult(Outcome.REFUSED, detail=f"{type(exc).__name__}: {exc.user_message}"[:500])
        status = str(getattr(payout, "status", "") or "")
        if status in ("failed", "canceled"):
            return SubmitResult(Outcome.DECLINED, psp_reference=str(payout.id), detail=status)
        return SubmitResult(Outcome.ACCEPTED, psp_reference=str(payout.id), detail=status)


_registry: dict[str, PayoutProvider] = {}


def register_provider(provider: PayoutProvider) -> PayoutProvider:
    """Make a payout rail available by its name."""
    _registry[provider.name] = provider
    return provider


def get_provider(name: str) -> PayoutProvider:
    """Return the registered rail, or raise UnknownProvider."""
    try:
        return _registry[name]
    except (KeyError, TypeError):
        raise UnknownProvider(f"Unknown payout provider {name!r}; known: {', '.join(sorted(_registry))}.") from None


def provider_names() -> list[str]:
    """Return the names of the registered rails."""
    return sorted(_registry)


register_provider(AdyenTransfersProvider())
register_provider(StripePayoutProvider())
