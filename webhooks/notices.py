"""Read a stored webhook event into one `Notice`: what it says about which deposit.

Pure functions over the stored payload (no database, no network), so a replay reads an event exactly
as the first processing did. The ledger reference of a credit is derived from the provider and the
PSP's payment reference (`deposit:stripe:<payment_intent id>`), so two different events about the
same payment credit once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .models import Provider

STRIPE_CREDIT_TYPES = ("payment_intent.succeeded", "checkout.session.completed")
# Events that move no money here but may mean money is owed either way: stored and flagged for an operator.
STRIPE_REVIEW_TYPES = ("charge.dispute.closed", "charge.dispute.funds_reinstated", "charge.refund.updated")
ADYEN_REVIEW_CODES = (
    "CHARGEBACK_REVERSED",
    "SECOND_CHARGEBACK",
    "NOTIFICATION_OF_CHARGEBACK",
    "REFUND_FAILED",
    "REFUNDED_REVERSED",
    "PREARBITRATION_WON",
    "PREARBITRATION_LOST",
)


class Kind(enum.StrEnum):
    CREDIT = "credit"
    FAIL = "fail"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    REVIEW = "review"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Notice:
    """One event's meaning: the kind, the deposit it is about, the payment and the amount."""

    kind: Kind
    provider: str
    deposit_reference: str = ""
    psp_reference: str = ""
    amount_u: int | None = None
    currency: str = ""
    reversal_id: str = ""
    cumulative: bool = False
    note: str = ""

    @property
    def credit_reference(self) -> str:
        """The ledger reference of the credit, unique forever per provider payment."""
        return f"deposit:{self.provider}:{self.psp_reference}"

    @property
    def reversal_reference(self) -> str:
        """The ledger reference of a refund or chargeback debit, derived from the event."""
        return f"deposit-{self.kind}:{self.provider}:{self.reversal_id}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def stripe_notice(event: dict[str, Any]) -> Notice:
    """Read a Stripe Event."""
    event_type = _str(event.get("type"))
    obj = _dict(_dict(event.get("data")).get("object"))
    metadata = _dict(obj.get("metadata"))
    currency = _str(obj.get("currency")).upper()
    if event_type == "payment_intent.succeeded":
        # What was received, not what was asked for; `amount` only when Stripe omits amount_received.
        amount = _int(obj["amount_received"]) if "amount_received" in obj else _int(obj.get("amount"))
        return Notice(
            Kind.CREDIT, Provider.STRIPE, _str(metadata.get("deposit_reference")), _str(obj.get("id")), amount, currency
        )
    if event_type == "checkout.session.completed":
        if obj.get("payment_status") != "paid":
            return Notice(Kind.IGNORE, Provider.STRIPE, note=f"checkout session not paid ({obj.get('payment_status')})")
        reference = _str(metadata.get("deposit_reference")) or _str(obj.get("client_reference_id"))
        payment = _str(obj.get("payment_intent")) or _str(obj.get("id"))
        return Notice(Kind.CREDIT, Provider.STRIPE, reference, payment, _int(obj.get("amount_total")), currency)
    if event_type == "payment_intent.canceled":
        return Notice(
            Kind.FAIL,
            Provider.STRIPE,
            _str(metadata.get("deposit_reference")),
            _str(obj.get("id")),
            note="payment intent canceled",
        )
    if event_type == "charge.refunded":
        # amount_refunded is cumulative over the charge's refunds: debit what is not debited yet.
        return Notice(
            Kind.REFUND,
            Provider.STRIPE,
            _str(metadata.get("deposit_reference")),
            _str(obj.get("payment_intent")),
            _int(obj.get("amount_refunded")),
            currency,
            reversal_id=f"{_str(obj.get('id'))}:{obj.get('amount_refunded')}",
            cumulative=True,
        )
    if event_type == "charge.dispute.created":
        return Notice(
            Kind.CHARGEBACK,
            Provider.STRIPE,
            "",
            _str(obj.get("payment_intent")),
            _int(obj.get("amount")),
            currency,
            reversal_id=_str(obj.get("id")),
        )
    if event_type in STRIPE_REVIEW_TYPES:
        return Notice(
            Kind.REVIEW,
            Provider.STRIPE,
            _str(metadata.get("deposit_reference")),
            _str(obj.get("payment_intent")),
            _int(obj.get("amount")),
            currency,
            note=f"{event_type} (status {obj.get('status')!r}): no money moved automatically; review",
        )
    return Notice(Kind.IGNORE, Provider.STRIPE, note=f"event type {event_type!r} is not handled")


def adyen_notice(item: dict[str, Any]) -> Notice:
    """Read one Adyen NotificationRequestItem (already verified)."""
    code = _str(item.get("eventCode"))
    success = item.get("success") == "true"  # the string "true", never a truthy value
    amount = _dict(item.get("amount"))
    value, currency = _int(amount.get("value")), _str(amount.get("currency")).upper()
    psp_reference = _str(item.get("pspReference"))
    merchant_reference = _str(item.get("merchantReference"))
    if code == "AUTHORISATION":
        if success:
            return Notice(Kind.CREDIT, Provider.ADYEN, merchant_reference, psp_reference, value, currency)
        return Notice(
            Kind.FAIL,
            Provider.ADYEN,
            merchant_reference,
            psp_reference,
            note=f"authorisation refused: {_str(item.get('reason')) or 'no reason given'}",
        )
    original = _str(item.get("originalReference"))
    if code == "REFUND":
        if not success:
            return Notice(Kind.IGNORE, Provider.ADYEN, note="refund request failed at Adyen; no money moved")
        return Notice(
            Kind.REFUND, Provider.ADYEN, merchant_reference, original, value, currency, reversal_id=psp_reference
        )
    if code == "CHARGEBACK":
        return Notice(
            Kind.CHARGEBACK, Provider.ADYEN, merchant_reference, original, value, currency, reversal_id=psp_reference
        )
    if code in ADYEN_REVIEW_CODES:
        return Notice(
            Kind.REVIEW,
            Provider.ADYEN,
            merchant_reference,
            original,
            value,
            currency,
            note=f"{code} (success {item.get('success')!r}): no money moved automatically; review",
        )
    return Notice(Kind.IGNORE, Provider.ADYEN, note=f"event code {code!r} is not handled")


def signed_deposit_notice(provider: str, payload: dict[str, Any]) -> Notice:
    """Read a custody (or simulated) deposit: the reference names both the deposit and the payment."""
    reference = _str(payload.get("reference"))
    return Notice(
        Kind.CREDIT, provider, reference, reference, _int(payload.get("amount_u")), _str(payload.get("currency"))
    )


def notice_for(provider: str, payload: dict[str, Any]) -> Notice:
    """Read a stored event of any provider."""
    if provider == Provider.STRIPE:
        return stripe_notice(payload)
    if provider == Provider.ADYEN:
        return adyen_notice(payload)
    return signed_deposit_notice(provider, payload)


def adyen_event_id(item: dict[str, Any]) -> str:
    """Adyen has no event id: eventCode + pspReference + success identify a notification."""
    return f"{item.get('eventCode')}:{item.get('pspReference')}:{item.get('success')}"


def event_reference(provider: str, payload: dict[str, Any]) -> str:
    """The PSP payment reference an event is about, for searching (not for money)."""
    notice = notice_for(provider, payload)
    if notice.psp_reference:
        return notice.psp_reference
    if provider == Provider.STRIPE:
        return _str(_dict(_dict(payload.get("data")).get("object")).get("id"))
    return _str(payload.get("pspReference"))
