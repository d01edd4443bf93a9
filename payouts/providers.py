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
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ops import psp

from .errors import InvalidDestination, UnknownProvider
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
    # Only part of the submission reached the PSP (Stripe Connect: the transfer, not yet the payout): pending,
    # and submitting again with the same key completes it (payouts.services._found_at_psp).
    incomplete: bool = False


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


# The most HTTP calls one run makes, with a spare: a status call after a caller died mid-call, then the
# submission's own (Adyen: one transfer). A rail that makes more says so (`calls_per_submit`).
PSP_CALLS_PER_SUBMIT = 3


def provider_timeout_s() -> float:
    """Client timeout for PSP calls, in seconds (short: a payout worker must not hang)."""
    return float(settings.PAYOUT_PROVIDER_TIMEOUT_S)


class PayoutProvider:
    """A payout rail. Subclasses implement `submit`; it must never raise for a PSP answer.

    Each rail declares its destination: `destination_shape` (what a withdrawal request must carry, shown in
    refusals and docs), `clean_destination` (refuse anything else, return what is stored on the withdrawal as
    its snapshot) and `destination_label` (one line for the admin). `submit` checks the stored destination
    again before it calls the PSP: a payout is never built with an empty or default counterparty.
    """

    name: ClassVar[str] = ""
    calls_per_submit: ClassVar[int] = PSP_CALLS_PER_SUBMIT
    # After a caller died mid-call on a key, ask `status` before submitting again (payouts.services._found_at_psp).
    status_before_resubmit: ClassVar[bool] = True
    destination_shape: ClassVar[str] = ""

    def clean_destination(self, destination: Any) -> dict[str, Any]:
        """Return the destination to store (a snapshot), or raise InvalidDestination (an ApplicationError)."""
        raise InvalidDestination(f"The {self.name} rail declares no destination; nothing was held.")

    def destination_label(self, destination: Any) -> str:
        """One line for operators: where this withdrawal is paid to (or why it cannot be)."""
        try:
            cleaned = self.clean_destination(destination)
        except InvalidDestination:
            return "no valid destination (the payout is refused before the PSP is called)"
        return ", ".join(f"{key}={value}" for key, value in cleaned.items())

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
        return self.calls_per_submit * 2 * provider_timeout_s()

    def refund_blocker(self, *, withdrawal: Withdrawal) -> str:
        """Why the held funds may not be released now because the money already reached the player, or ""."""
        return ""


# --- Destinations ------------------------------------------------------------------------------

STRIPE_ACCOUNT_ID = re.compile(r"^acct_[A-Za-z0-9]{16,32}$")
ADYEN_TRANSFER_INSTRUMENT_ID = re.compile(r"^[A-Z0-9]{16,64}$")
IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
_HOLDER_NAME_MAX = 80


def destination_object(destination: Any, *, rail: str, shape: str) -> dict[str, Any]:
    """The destination as a non-empty object, or InvalidDestination naming the rail's shape."""
    if not isinstance(destination, dict) or not destination:
        raise InvalidDestination(
            f"A withdrawal on the {rail} rail needs a destination {shape}; nothing was held.", extra={"provider": rail}
        )
    return destination


def _only_fields(destination: dict[str, Any], allowed: set[str], *, rail: str, shape: str) -> None:
    unknown = sorted(set(destination) - allowed)
    if unknown:
        raise InvalidDestination(
            f"A destination on the {rail} rail takes {shape}; unknown field(s) {', '.join(unknown)[:100]}. "
            "Nothing was held.",
            extra={"provider": rail},
        )


def _text(value: Any, *, field: str, rail: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidDestination(f"{rail} destination: {field} must be a non-empty string. Nothing was held.")
    return value.strip()


def iban_check(value: str) -> str:
    """Return the IBAN without spaces, upper case, or raise InvalidDestination (format and mod-97 check)."""
    iban = value.replace(" ", "").upper()
    if not IBAN.match(iban):
        raise InvalidDestination(f"adyen destination: {value[:40]!r} is not an IBAN. Nothing was held.")
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    if int(digits) % 97 != 1:
        raise InvalidDestination(f"adyen destination: IBAN {iban[:40]} fails its check digits. Nothing was held.")
    return iban


class AdyenTransfersProvider(PayoutProvider):
    """Adyen Balance Platform Transfers API (`POST /transfers`) through the official SDK."""

    name = "adyen"
    destination_shape = (
        '{"transfer_instrument_id": "<the player\'s transfer instrument>"} or '
        '{"bank_account": {"holder_name": "<full name>", "iban": "<IBAN>"}}'
    )

    def clean_destination(self, destination: Any) -> dict[str, Any]:
        """The player's own transfer instrument, or a third party's bank account (IBAN and holder's name)."""
        rail, shape = self.name, self.destination_shape
        destination = destination_object(destination, rail=rail, shape=shape)
        _only_fields(destination, {"transfer_instrument_id", "bank_account"}, rail=rail, shape=shape)
        if len(destination) != 1:
            raise InvalidDestination(f"A destination on the adyen rail is one of {shape}, not both. Nothing was held.")
        if "transfer_instrument_id" in destination:
            instrument = _text(destination["transfer_instrument_id"], field="transfer_instrument_id", rail=rail)
            if not ADYEN_TRANSFER_INSTRUMENT_ID.match(instrument):
                raise InvalidDestination(
                    f"adyen destination: {instrument[:70]!r} is not a transfer instrument id "
                    "(16 to 64 upper-case letters and digits). Nothing was held."
                )
            return {"transfer_instrument_id": instrument}
        account = destination["bank_account"]
        if not isinstance(account, dict):
            raise InvalidDestination("adyen destination: bank_account must be an object. Nothing was held.")
        _only_fields(account, {"holder_name", "iban"}, rail=rail, shape=shape)
        holder = _text(account.get("holder_name"), field="bank_account.holder_name", rail=rail)
        if len(holder) > _HOLDER_NAME_MAX:
            raise InvalidDestination(
                f"adyen destination: holder_name is longer than {_HOLDER_NAME_MAX} characters. Nothing was held."
            )
        iban = iban_check(_text(account.get("iban"), field="bank_account.iban", rail=rail))
        return {"bank_account": {"holder_name": holder, "iban": iban}}

    def destination_label(self, destination: Any) -> str:
        try:
            cleaned = self.clean_destination(destination)
        except InvalidDestination:
            return super().destination_label(destination)
        if "transfer_instrument_id" in cleaned:
            return f"transfer instrument {cleaned['transfer_instrument_id']}"
        account = cleaned["bank_account"]
        return f"bank account {account['iban']} ({account['holder_name']})"

    def counterparty(self, destination: Any) -> dict[str, Any]:
        """The Transfers API `counterparty` for a destination; raises InvalidDestination, never a default."""
        cleaned = self.clean_destination(destination)
        if "transfer_instrument_id" in cleaned:
            return {"transferInstrumentId": cleaned["transfer_instrument_id"]}
        account = cleaned["bank_account"]
        return {
            "bankAccount": {
                "accountHolder": {"fullName": account["holder_name"]},
                "accountIdentification": {"type": "iban", "iban": account["iban"]},
            }
        }

    def _api(self) -> Any:
        return psp.point_at_base(psp.adyen_sdk(timeout_s=provider_timeout_s()).transfers.transfers_api)

    def request_body(self, *, withdrawal: Withdrawal, idempotency_key: str) -> dict[str, Any]:
        """Build the transfer request; `reference` carries our idempotency key back in webhooks.

        The Transfers API keeps no metadata, so the flow id goes in `description`.

        The counterparty is the withdrawal's own destination (`counterparty`); there is no default: an empty
        or malformed destination raises InvalidDestination.
        """
        counterparty = self.counterparty(withdrawal.destination)
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

        try:
            body = self.request_body(withdrawal=withdrawal, idempotency_key=idempotency_key)
        except InvalidDestination as exc:  # refused before any call: no default counterparty, ever
            return SubmitResult(Outcome.REFUSED, detail=f"destination: {exc.detail}"[:500])
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
    """Stripe Connect through the official SDK's `StripeClient`: a player is paid on their connected account.

    One Transfer per withdrawal from the platform's balance to the player's connected account (`POST
    /v1/transfers`, `destination=acct_...`, `transfer_group=withdrawal-<id>`, key `wd-<id>:transfer:<n>`), looked
    up first so that no attempt ever transfers twice, then the attempt's payout of that account to its own bank
    account (`POST /v1/payouts` with the `Stripe-Account: acct_...` header, key = the attempt's key). A retry of
    one attempt replays both; a new attempt (manual retry) pays out the money already on the account. Never
    `payouts.create` on the platform's own balance: that would pay our own bank account.

    A payout declined after its transfer leaves the money on the player's connected account (the detail says
    so): before refunding such a withdrawal, reverse the transfer at Stripe.
    """

    name = "stripe"
    # A status call, then Connect's three: look for the withdrawal's transfer, make it, pay it out.
    calls_per_submit = 4
    destination_shape = '{"connected_account": "acct_..."} (the player\'s Stripe Connect account)'

    def clean_destination(self, destination: Any) -> dict[str, Any]:
        """The player's connected account id (`acct_` and 16 to 32 letters or digits), nothing else."""
        destination = destination_object(destination, rail=self.name, shape=self.destination_shape)
        _only_fields(destination, {"connected_account"}, rail=self.name, shape=self.destination_shape)
        account = _text(destination.get("connected_account"), field="connected_account", rail=self.name)
        if not STRIPE_ACCOUNT_ID.match(account):
            raise InvalidDestination(
                f"stripe destination: {account[:60]!r} is not a connected account id (acct_...). Nothing was held."
            )
        return {"connected_account": account}

    def destination_label(self, destination: Any) -> str:
        try:
            return f"connected account {self.clean_destination(destination)['connected_account']}"
        except InvalidDestination:
            return super().destination_label(destination)

    def _client(self) -> Any:
        return psp.stripe_client(timeout_s=provider_timeout_s())  # no SDK retries: the payout worker decides

    @staticmethod
    def transfer_group(withdrawal: Withdrawal) -> str:
        """The Stripe `transfer_group` of a withdrawal's transfer: one per withdrawal, whatever the attempt."""
        return f"withdrawal-{withdrawal.pk}"

    def submit(self, *, withdrawal: Withdrawal, idempotency_key: str) -> SubmitResult:
        import stripe

        try:  # refused before any call: never a payout without the player's connected account
            account = self.clean_destination(withdrawal.destination)["connected_account"]
        except InvalidDestination as exc:
            return SubmitResult(Outcome.REFUSED, detail=f"destination: {exc.detail}"[:500])
        group = self.transfer_group(withdrawal)
        tags = {"withdrawal_id": str(withdrawal.pk), "flow_id": withdrawal.flow_id}
        client = self._client()
        step = "transfer lookup"
        try:
            # One transfer per withdrawal, never one per attempt: a retry after a failed payout finds the money
            # already on the connected account and pays it out from there (a reversed transfer does not count).
            sent = client.v1.transfers.list(params={"destination": account, "transfer_group": group, "limit": 100})
            live = [t for t in sent.data if not t.reversed]
            if len(live) > 1 or (live and int(live[0].amount) != withdrawal.amount_u):
                amounts = ", ".join(f"{t.id}={t.amount}" for t in live)
                return SubmitResult(
                    Outcome.REFUSED, detail=f"transfer group {group} to {account} holds {amounts}: review"[:500]
                )
            if live:
                transfer = live[0]
            else:
                step = "transfer"
                transfer = client.v1.transfers.create(
                    params={
                        "amount": withdrawal.amount_u,
                        "currency": withdrawal.currency.lower(),
                        "description": f"Withdrawal {withdrawal.pk}",
                        "destination": account,
                        "transfer_group": group,
                        "metadata": tags,
                    },
                    options={"idempotency_key": f"wd-{withdrawal.pk}:transfer:{len(sent.data)}"},
                )
            step = f"payout on {account} after transfer {transfer.id}"
            payout = client.v1.payouts.create(
                params={
                    "amount": withdrawal.amount_u,
                    "currency": withdrawal.currency.lower(),
                    "description": f"Withdrawal {withdrawal.pk}",
                    "metadata": {**tags, "idempotency_key": idempotency_key},
                },
                options={"idempotency_key": idempotency_key, "stripe_account": account},
            )
        except stripe.APIConnectionError as exc:
            if step == "transfer lookup":  # a read: nothing happened
                return SubmitResult(Outcome.ERROR, detail=f"{step}: connection: {exc.user_message or exc}"[:500])
            # Timeouts and dropped connections: the call may have happened. Retry with the same keys only.
            return SubmitResult(Outcome.AMBIGUOUS, detail=f"{step}: connection: {exc.user_message or exc}"[:500])
        except stripe.RateLimitError as exc:
            return SubmitResult(Outcome.ERROR, detail=f"{step}: rate limited: {exc.user_message}"[:500])
        except stripe.APIError as exc:
            return SubmitResult(Outcome.ERROR, detail=f"{step}: HTTP {exc.http_status}: {exc.user_message}"[:500])
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
                return SubmitResult(Outcome.DECLINED, detail=f"{step}: {exc.code}: {exc.user_message}"[:500])
            return SubmitResult(Outcome.REFUSED, detail=f"{step}: {exc.code}: {exc.user_message}"[:500])
        except stripe.StripeError as exc:
            return SubmitResult(Outcome.REFUSED, detail=f"{step}: {type(exc).__name__}: {exc.user_message}"[:500])
        status = str(getattr(payout, "status", "") or "")
        detail = f"{status} (transfer {transfer.id} to {account})"
        if status in ("failed", "canceled"):
            return SubmitResult(Outcome.DECLINED, psp_reference=str(payout.id), detail=detail)
        return SubmitResult(Outcome.ACCEPTED, psp_reference=str(payout.id), detail=detail)

    def status(self, *, withdrawal: Withdrawal, idempotency_key: str, psp_reference: str = "") -> StatusResult:
        """Retrieve the connected account's payout (`GET /v1/payouts/{id}` with its `Stripe-Account`); without
        its id, find it among the account's recent payouts by the idempotency key in its metadata.

        A withdrawal from before destinations were required has no connected account: it is looked up on the
        platform's own balance, where it was paid (reading only).
        """
        import stripe

        client = self._client()
        account = (withdrawal.destination or {}).get("connected_account")
        options: dict[str, Any] = {"stripe_account": str(account)} if account else {}
        try:
            if psp_reference:
                payout = client.v1.payouts.retrieve(psp_reference, options=options)
            else:
                recent = client.v1.payouts.list(params={"limit": 100}, options=options)
                matches = [p for p in recent.data if _stripe_metadata(p).get("idempotency_key") == idempotency_key]
                if not matches and account:
                    return self._transfer_status(client, withdrawal=withdrawal, account=str(account))
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
            evidence={"payout": payout.to_dict(), "stripe_account": account or "platform"},
        )

    def refund_blocker(self, *, withdrawal: Withdrawal) -> str:
        """A live transfer of this withdrawal to the player's connected account: the money is theirs already, so
        releasing the held funds too would pay twice (retry the payout, or reverse the transfer at Stripe first).
        Asked before the refund is decided, outside any transaction."""
        import stripe

        account = (withdrawal.destination or {}).get("connected_account")
        if not account:
            return ""  # a withdrawal from before Connect: never transferred
        group = self.transfer_group(withdrawal)
        try:
            sent = self._client().v1.transfers.list(
                params={"destination": str(account), "transfer_group": group, "limit": 100}
            )
        except stripe.StripeError as exc:
            return (
                f"Stripe could not be asked whether withdrawal {withdrawal.pk}'s transfer reached {account} "
                f"({type(exc).__name__}); try again. Nothing was changed."
            )
        live = [t for t in sent.data if not t.reversed]
        if not live:
            return ""
        return (
            f"Transfer {live[0].id} already put this money on the player's connected account {account}: a refund "
            "would pay twice. Retry the payout, or reverse the transfer at Stripe first. Nothing was changed."
        )

    def _transfer_status(self, client: Any, *, withdrawal: Withdrawal, account: str) -> StatusResult:
        """No payout on the connected account yet: did the withdrawal's Transfer reach it? Then the attempt is
        half done (PENDING: the payout worker's retry finds the transfer and makes the payout, same key); else
        NOT_FOUND. Raises StripeError for the caller to classify."""
        group = self.transfer_group(withdrawal)
        sent = client.v1.transfers.list(params={"destination": account, "transfer_group": group, "limit": 100})
        live = [t for t in sent.data if not t.reversed]
        if not live:
            return StatusResult(
                PayoutStatus.NOT_FOUND, detail=f"no payout on {account} and no live transfer in group {group}"
            )
        transfer = live[0]
        return StatusResult(
            PayoutStatus.PENDING,
            psp_status="transferred",
            amount_u=_int_or_none(transfer.amount),
            currency=str(transfer.currency or "").upper(),
            detail=f"transfer {transfer.id} reached {account}; its payout is not made yet (the payout worker retries)",
            evidence={"transfer": transfer.to_dict(), "stripe_account": account},
            incomplete=True,
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
