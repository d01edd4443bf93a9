"""Test helpers for payouts: balances, a snapshot of everything a refusal must not change, signed webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.test import Client

from webhooks.stub import (
    STUB_CONNECTED_ACCOUNT,
    adyen_transfer_request,
    adyen_transfer_webhook,
    stripe_event,
    stripe_request,
)

# A valid destination per rail, each in its rail's declared shape (`PayoutProvider.destination_shape`).
ADYEN_INSTRUMENT = "SE322KH223222F5GXZFNM3BGP"  # the player's own transfer instrument (Adyen's id format)
ADYEN_IBAN = "NL91ABNA0417164300"  # a third party's bank account (a valid IBAN)
DESTINATIONS: dict[str, dict[str, Any]] = {
    "adyen": {"transfer_instrument_id": ADYEN_INSTRUMENT},
    "stripe": {"connected_account": STUB_CONNECTED_ACCOUNT},  # the account every PSPStub knows
}


def destination_for(provider: str) -> dict[str, Any]:
    """A valid destination for a PSP rail's withdrawal in tests (chain tests give their own address)."""
    return dict(DESTINATIONS[provider])


@dataclass
class Balances:
    available_u: int
    held_u: int


def balances(user: Any, currency: str = "USDC") -> Balances:
    """Return a player's stored available and held balances."""
    from ledger.models import Account

    rows = dict(Account.objects.filter(owner=user, currency=currency).values_list("kind", "balance_u"))
    return Balances(rows.get(Account.Kind.USER_AVAILABLE, 0), rows.get(Account.Kind.USER_HELD, 0))


def snapshot() -> dict[str, Any]:
    """Counts and states that a refused action must leave exactly as they were."""
    from ledger.models import Account, Entry, Journal
    from ops.models import AuditRecord, Proposal
    from payouts.models import PayoutAttempt, PayoutEvent, Withdrawal
    from rounds.models import Bet, Round
    from webhooks.models import Deposit

    return {
        "withdrawals": list(
            Withdrawal.objects.order_by("pk").values_list("pk", "state", "amount_u", "payout_generation")
        ),
        "journals": Journal.objects.count(),
        "entries": Entry.objects.count(),
        "balances": list(Account.objects.order_by("pk").values_list("name", "balance_u")),
        "audit": AuditRecord.objects.filter(object_type="payouts.withdrawal").count(),
        "attempts": PayoutAttempt.objects.count(),
        "events": PayoutEvent.objects.count(),
        "proposals": list(Proposal.objects.order_by("pk").values_list("pk", "kind", "state", "decided_by")),
        "all_audit": AuditRecord.objects.count(),
        "rounds": list(
            Round.objects.order_by("pk").values_list("code", "status", "result", "up_pool_u", "down_pool_u")
        ),
        "bets": Bet.objects.count(),
        "deposits": list(Deposit.objects.order_by("pk").values_list("pk", "status", "amount_u")),
    }


def send_adyen_transfer(transfer: dict[str, Any], status: str, *, key: str | None = None, tamper: bool = False) -> Any:
    """POST a signed Adyen Transfers webhook (built by the stub's helpers) to the app."""
    from django.conf import settings

    signed = adyen_transfer_request(adyen_transfer_webhook(transfer, status), key or settings.ADYEN_HMAC_KEY)
    body = signed.body.replace(b'"booked"', b'"failed"') if tamper else signed.body
    return Client().post(
        "/webhooks/payouts/adyen",
        data=body,
        content_type="application/json",
        headers={"HmacSignature": signed.headers["HmacSignature"]},
    )


def send_stripe_payout_event(
    payout: dict[str, Any], event_type: str, *, secret: str | None = None, event_id: str | None = None
) -> Any:
    """POST a signed Stripe payout event (built by the stub's helpers) to the app."""
    from django.conf import settings

    status = {"payout.paid": "paid", "payout.failed": "failed"}.get(event_type, payout.get("status"))
    event = stripe_event(event_type, {**payout, "status": status}, event_id)
    signed = stripe_request(event, secret or settings.STRIPE_WEBHOOK_SECRET)
    return Client().post(
        "/webhooks/payouts/stripe",
        data=signed.body,
        content_type="application/json",
        headers={"Stripe-Signature": signed.headers["Stripe-Signature"]},
    )
