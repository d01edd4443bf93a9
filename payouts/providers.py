"""Payout rails behind one interface: `PayoutProvider.submit(*, withdrawal, idempotency_key)`.

Each provider calls its PSP with our idempotency key, so calling twice with one key pays once,
and classifies the answer into a `SubmitResult`:

* ACCEPTED: the PSP took the payout (paid comes later, by webhook);
* DECLINED: the PSP refused it for good (funds stay held, manual review);
* AMBIGUOUS: we cannot know whether it happened (timeout); retry only with the same key;
* ERROR: a transient failure where nothing happened (5xx, connection refused); safe to retry;
* REFUSED: a request or configuration error (bad key, bad request); a retry will not help.

`PayoutProvider.status(*, withdrawal, idempotency_key, psp_reference)` asks the PSP what became of a
payout (by its id, else by our idempotency key) and classifies the answer into a `StatusResult`: PAID,
FAILED (final), PENDING (not final yet), NOT_FOUND, UNKNOWN (a status we do not know) or ERROR (we could
not ask). `payouts.reconciliation` acts on it.

Add a rail (e.g. on-chain USDC) by subclassing `PayoutProvider` and calling `register_provider`.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ops import psp

from .errors import UnknownProvider
from .models import Withdrawal

logger = logging.getLogger(__name__)


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


class PayoutStatus(enum.StrEnum):
    PAID = "paid"
    FAILED = "failed"
    PENDING = "pending"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"
    ERROR = "error"


@dataclass(frozen=True)
class StatusResult:
    """What the PSP said when asked about one payout, with its raw answer as evidence."""

    status: PayoutStatus
    psp_reference: str = ""
    psp_status: str = ""
    amount_u: int | None = None
    currency: str = ""
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


ADYEN_TRANSFER_STATUSES = {
    "booked": PayoutStatus.PAID,
    "credited": PayoutStatus.PAID,
    "failed": PayoutStatus.FAILED,
    "returned": PayoutStatus.FAILED,
    "refused": PayoutStatus.FAILED,
    "error": PayoutStatus.FAILED,
    "received": PayoutStatus.PENDING,
    "authorised": PayoutStatus.PENDING,
    "pending": PayoutStatus.PENDING,
    "approvalPending": PayoutStatus.PENDING,
    "captured": PayoutStatus.PENDING,
}
STRIPE_PAYOUT_STATUSES = {
    "paid": PayoutStatus.PAID,
    "failed": PayoutStatus.FAILED,
    "canceled": PayoutStatus.FAILED,
    "pending": PayoutStatus.PENDING,
    "in_transit": PayoutStatus.PENDING,
}


# At most three HTTP calls per run: a status call after a caller died mid-call, then the submission's two
# (e.g. a transfer, then its payout).
PSP_CALLS_PER_SUBMIT = 3


def provider_timeout_s() -> float:
    """Client timeout for PSP calls, in seconds (short: a payout worker must not hang)."""
    return float(settings.PAYOUT_PROVIDER_TIMEOUT_S)


class PayoutProvider:
    """A payout rail. Subclasses implement `submit`; it must never raise for a PSP answer."""

    name: ClassVar[str] = ""
    # After a caller died mid-call on a key, ask `status` before submitting again (payouts.services._found_at_psp).
    status_before_resubmit: ClassVar[bool] = True

    def submit(self, *, withdrawal: Withdrawal, idempotency_key: str) -> SubmitResult:
        raise NotImplementedError

    def status(self, *, withdrawal: Withdrawal, idempotency_key: str, psp_reference: str = "") -> StatusResult:
        """Ask the PSP about a payout (by its reference, else by our key); never raises for a PSP answer."""
        raise NotImplementedError

    def validate_request(self, *, currency: str, destination: Any) -> None:
        """Refuse, at request time, a currency or destination this rail can never pay (raise an ApplicationError)."""

    def resolution_blocker(self, *, withdrawal: Withdrawal) -> str:
        """Why a submitted payout may not be resolved by hand now (e.g. a transaction that may still land), or ""."""
        return ""

    def call_budget_s(self) -> float:
        """The longest one `submit` or `status` may take: its HTTP calls, each a connect and a read timeout.

        The payout lease (payouts/leases.py) outlives it by PAYOUT_LEASE_MARGIN_S, so nobody else calls
        the PSP about the same payout while this call may still be running.
        """
        return PSP_CALLS_PER_SUBMIT * 2 * provider_timeout_s()


class AdyenTransfersProvider(PayoutProvider):
    """Adyen Balance Platform Transfers API (`POST /transfers`) through the official SDK."""

    name = "adyen"

    def _api(self) -> Any:
        return psp.point_at_base(psp.adyen_sdk(timeout_s=provider_timeout_s()).transfers.transfers_api)

    def request_body(self, *, withdrawal: Withdrawal, idempotency_key: str) -> dict[str, Any]:
        """Build the transfer request; `reference` carries our idempotency key back in webhooks.

        The Transfers API keeps no metadata, so the flow id goes in `description`.

        The destination is the player's `counterparty` (Adyen's format) or a `transfer_instrument_id`.
        """
        destination = withdrawal.destination or {}
        counterparty = destination.get("counterparty") or {
            "transferInstrumentId": str(
                destination.get("transfer_instrument_id") or settings.ADYEN_TRANSFER_INSTRUMENT_ID
            )
        }
        return {
            "amount": {"currency": withdrawal.currency, "value": withdrawal.amount_u},
            "balanceAccountId": settings.ADYEN_BALANCE_ACCOUNT_ID,
            "category": "bank",
            "counterparty": counterparty,
            "reference": idempotency_key,
            "referenceForBeneficiary": f"withdrawal {withdrawal.pk}",
            # A transfer has no metadata: its description (ours, up to 140 characters) carries the flow.
            "description": f"Withdrawal {withdrawal.pk} flow {withdrawal.flow_id}"[:140],
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
            api = self._api()
        except ImproperlyConfigured as exc:  # e.g. the test platform in production: nothing was sent
            return SubmitResult(Outcome.ERROR, detail=f"configuration: {exc}"[:500])
        try:
            result = api.transfer_funds(body, idempotency_key=idempotency_key)
        except requests.Timeout as exc:
            return SubmitResult(Outcome.AMBIGUOUS, detail=f"timeout: {exc}"[:500])
        except requests.ConnectionError as exc:
            # A connection that dropped mid-request may have reached the PSP: treat as ambiguous.
            return SubmitResult(Outcome.AMBIGUOUS, detail=f"connection error: {exc}"[:500])
        except AdyenAPIUnprocessableEntity as exc:
            refused = _adyen_problem(exc).get("response") or {}
            return SubmitResult(Outcome.DECLINED, psp_reference=str(refused.get("id", "")), detail=_adyen_detail(exc))
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

    def status(self, *, withdrawal: Withdrawal, idempotency_key: str, psp_reference: str = "") -> StatusResult:
        """`GET /transfers/{id}`, or `GET /transfers?reference=<our key>` when we never learnt the id."""
        from Adyen.exceptions import AdyenAPIResponseError, AdyenError

        api = self._api()
        try:
            if psp_reference:
                transfer = api.get_transfer(psp_reference).message or {}
            else:
                found = (
                    api.get_all_transfers(
                        query_parameters={
                            "reference": idempotency_key,
                            "balanceAccountId": settings.ADYEN_BALANCE_ACCOUNT_ID,
                        }
                    ).message
                    or {}
                )
                matches = [t for t in found.get("data") or [] if t.get("reference") == idempotency_key]
                if not matches:
                    return StatusResult(
                        PayoutStatus.NOT_FOUND,
                        detail=f"no transfer with reference {idempotency_key}",
                        evidence={"response": found},
                    )
                if len(matches) > 1:
                    return StatusResult(
                        PayoutStatus.UNKNOWN,
                        detail=f"{len(matches)} transfers share reference {idempotency_key}",
                        evidence={"response": found},
                    )
                transfer = matches[0]
        except (requests.Timeout, requests.ConnectionError) as exc:
            return StatusResult(PayoutStatus.ERROR, detail=f"{type(exc).__name__}: {exc}"[:500])
        except AdyenAPIResponseError as exc:
            if exc.status_code == 404:
                return StatusResult(PayoutStatus.NOT_FOUND, psp_reference=psp_reference, detail=_adyen_detail(exc))
            return StatusResult(PayoutStatus.ERROR, detail=_adyen_detail(exc))
        except AdyenError as exc:
            if getattr(exc, "status_code", None) == 404:
                return StatusResult(PayoutStatus.NOT_FOUND, psp_reference=psp_reference, detail=_adyen_detail(exc))
            return StatusResult(PayoutStatus.ERROR, detail=_adyen_detail(exc))
        psp_status = str(transfer.get("status", ""))
        amount = transfer.get("amount") or {}
        return StatusResult(
            ADYEN_TRANSFER_STATUSES.get(psp_status, PayoutStatus.UNKNOWN),
            psp_reference=str(transfer.get("id", "")),
            psp_status=psp_status,
            amount_u=_int_or_none(amount.get("value")),
            currency=str(amount.get("currency", "")),
            detail=f"status={psp_status} reason={transfer.get('reason', '')}",
            evidence={"transfer": transfer},
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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
        return psp.stripe_client(timeout_s=provider_timeout_s())  # no SDK retries: the payout worker decides

    def submit(self, *, withdrawal: Withdrawal, idempotency_key: str) -> SubmitResult:
        import stripe

        params: dict[str, Any] = {
            "amount": withdrawal.amount_u,
            "currency": withdrawal.currency.lower(),
            "description": f"Withdrawal {withdrawal.pk}",
            "metadata": {
                "withdrawal_id": str(withdrawal.pk),
                "idempotency_key": idempotency_key,
                "flow_id": withdrawal.flow_id,
            },
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
            if exc.code in (
                "balance_insufficient",
                "account_closed",
                "no_account",
                "invalid_account_number",
                "debit_not_authorized",
                "bank_account_restricted",
                "insufficient_funds",
            ):
                return SubmitResult(Outcome.DECLINED, detail=f"{exc.code}: {exc.user_message}"[:500])
            return SubmitResult(Outcome.REFUSED, detail=f"{exc.code}: {exc.user_message}"[:500])
        except stripe.StripeError as exc:
            return SubmitResult(Outcome.REFUSED, detail=f"{type(exc).__name__}: {exc.user_message}"[:500])
        status = str(getattr(payout, "status", "") or "")
        if status in ("failed", "canceled"):
            return SubmitResult(Outcome.DECLINED, psp_reference=str(payout.id), detail=status)
        return SubmitResult(Outcome.ACCEPTED, psp_reference=str(payout.id), detail=status)

    def status(self, *, withdrawal: Withdrawal, idempotency_key: str, psp_reference: str = "") -> StatusResult:
        """Retrieve the payout (`GET /v1/payouts/{id}`); without its id, find it among the recent payouts
        by the idempotency key we put in its metadata."""
        import stripe

        client = self._client()
        try:
            if psp_reference:
                payout = client.v1.payouts.retrieve(psp_reference)
            else:
                recent = client.v1.payouts.list(params={"limit": 100})
                matches = [p for p in recent.data if _stripe_metadata(p).get("idempotency_key") == idempotency_key]
                if not matches:
                    return StatusResult(
                        PayoutStatus.NOT_FOUND,
                        detail=f"no recent payout with idempotency_key {idempotency_key} in its metadata",
                    )
                if len(matches) > 1:
                    return StatusResult(
                        PayoutStatus.UNKNOWN,
                        detail=f"{len(matches)} payouts share key {idempotency_key}",
                        evidence={"payouts": [m.to_dict() for m in matches]},
                    )
                payout = matches[0]
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return StatusResult(
                    PayoutStatus.NOT_FOUND, psp_reference=psp_reference, detail=f"{exc.code}: {exc.user_message}"[:500]
                )
            return StatusResult(PayoutStatus.ERROR, detail=f"{exc.code}: {exc.user_message}"[:500])
        except stripe.StripeError as exc:
            return StatusResult(PayoutStatus.ERROR, detail=f"{type(exc).__name__}: {exc.user_message or exc}"[:500])
        psp_status = str(payout.status or "")
        return StatusResult(
            STRIPE_PAYOUT_STATUSES.get(psp_status, PayoutStatus.UNKNOWN),
            psp_reference=str(payout.id),
            psp_status=psp_status,
            amount_u=_int_or_none(payout.amount),
            currency=str(payout.currency or "").upper(),
            detail=f"status={psp_status} {payout.failure_code or ''}".strip(),
            evidence={"payout": payout.to_dict()},
        )


def _stripe_metadata(obj: Any) -> dict[str, Any]:
    metadata = getattr(obj, "metadata", None)
    if metadata is not None and hasattr(metadata, "to_dict"):
        return dict(metadata.to_dict())
    return dict(metadata or {})


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
