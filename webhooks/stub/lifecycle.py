"""What makes the stub behave like a PSP in test mode: it finishes what a user starts.

* Payments: a Stripe PaymentIntent or an Adyen Checkout session is paid or declined on the pay page
  (``/_stub/pay/<psp_id>``), and the signed payment webhook follows at once: ``payment_intent.succeeded`` /
  ``payment_intent.canceled`` (Stripe), ``AUTHORISATION`` with ``success`` true / false (Adyen).
* Payouts: with a payout delay, a Stripe payout or an Adyen transfer becomes paid after that many seconds
  (``paid`` / ``booked``) and the signed payout webhook follows (``payout.paid`` as a Connect event with its
  ``account`` / ``balancePlatform.transfer.updated`` with status ``booked``). The test destinations fail
  (``payout.failed`` with ``account_closed`` / transfer ``failed``) or stay pending for ever (no webhook).
  Without a delay (the default of :class:`~webhooks.stub.server.PSPStub`) payouts stay as created: tests
  move them by hand.

Webhooks go to the stub's ``webhook_target`` at the back office's own paths, signed with the secrets the stub
was given (by default the development settings' ones, ``config/settings/local.py``). Whatever a webhook
announces, the PSP API answers too: a retrieve returns the new status, so reconciliation agrees.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import requests

from .delivery import post_webhook
from .ids import adyen_reference, stripe_id
from .signing import (
    SignedWebhook,
    adyen_notification,
    adyen_notification_item,
    adyen_notification_request,
    adyen_transfer_request,
    adyen_transfer_webhook,
    stripe_event,
    stripe_request,
)
from .state import (
    JSON,
    STUB_FAILING_ACCOUNT,
    STUB_FAILING_INSTRUMENT,
    STUB_PENDING_ACCOUNT,
    STUB_PENDING_INSTRUMENT,
    Reply,
)

if TYPE_CHECKING:
    from .server import PSPStub

# The back office's webhook endpoints (webhooks/urls.py and payouts/urls.py; a test checks they agree).
STRIPE_DEPOSIT_WEBHOOK_PATH = "/webhooks/stripe"
ADYEN_DEPOSIT_WEBHOOK_PATH = "/webhooks/adyen"
STRIPE_PAYOUT_WEBHOOK_PATH = "/webhooks/payouts/stripe"
ADYEN_PAYOUT_WEBHOOK_PATH = "/webhooks/payouts/adyen"
# The development settings' defaults (config/settings/local.py; a test checks they agree).
DEFAULT_STRIPE_WEBHOOK_SECRET = "whsec_local"
DEFAULT_ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
DEFAULT_PAYOUT_DELAY_S = 3.0  # what `make run` passes unless STUB_PAYOUT_DELAY_S says otherwise

OUTCOMES = ("succeeded", "failed")
PAYABLE_KINDS = ("stripe_payment_intent", "adyen_session")
PAYOUT_KINDS = ("stripe_payout", "adyen_transfer")
# Statuses from which a payment may still be paid or declined, and a payout may still be settled.
_OPEN_PAYMENT = {
    "stripe_payment_intent": ("requires_payment_method", "requires_confirmation", "requires_action", "processing"),
    "adyen_session": (None, "active"),
}
_OPEN_PAYOUT = {"stripe_payout": ("pending", "in_transit"), "adyen_transfer": ("authorised", "received", "pending")}
_CARD_DECLINED = {
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
    "type": "card_error",
}
_ACCOUNT_CLOSED = "The bank account has been closed."


@dataclass(frozen=True)
class Delivery:
    """One webhook the stub sent by itself: where, what, and the back office's answer (or why none)."""

    url: str
    event: str
    object_id: str
    status_code: int | None
    body: str = ""
    error: str = ""
    sent_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class _Settled:
    """A payment already paid or declined: its outcome and the event that said so (re-sent on a repeat)."""

    outcome: str
    path: str
    event_name: str
    build: Callable[[], SignedWebhook]


class Lifecycle:
    """The stub's test-mode behaviour; every method is safe to call from any thread."""

    def __init__(self, stub: PSPStub) -> None:
        self._stub = stub
        self._lock = threading.RLock()
        self._settled: dict[str, _Settled] = {}
        self._deliveries: list[Delivery] = []
        self._timers: dict[str, threading.Timer] = {}  # payout id -> its timer, until it has finished

    def reset(self) -> None:
        """Forget settled payments and deliveries, and stop the payouts waiting for their delay."""
        self.cancel()
        with self._lock:
            self._settled.clear()
            self._deliveries.clear()

    def cancel(self) -> None:
        """Stop the payout timers (those already running finish their delivery first)."""
        with self._lock:
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        for timer in timers:
            if timer is not threading.current_thread():
                timer.join(15)

    def deliveries(self) -> list[JSON]:
        """The webhooks sent by the stub itself so far, oldest first."""
        with self._lock:
            return [asdict(delivery) for delivery in self._deliveries]

    # Payments ---------------------------------------------------------------

    def payment(self, psp_id: str) -> tuple[str, JSON] | None:
        """(kind, object) of a PaymentIntent or Checkout session created here, None otherwise."""
        found = self._stub._state.find_any(psp_id)
        return found if found is not None and found[0] in PAYABLE_KINDS else None

    def settle(self, psp_id: str, outcome: str) -> Reply:
        """Pay (``succeeded``) or decline (``failed``) a payment and send its webhook; the same outcome again
        re-sends the same event (after a failed delivery), another one is refused. Nothing changes without a
        webhook target (the webhook could not follow)."""
        if outcome not in OUTCOMES:
            return Reply(400, {"error": f"outcome must be one of {list(OUTCOMES)}, not {outcome!r}."})
        found = self.payment(psp_id)
        if found is None:
            return Reply(404, {"error": f"No payment intent or Checkout session {psp_id!r} at this stub."})
        if not self._stub.webhook_target:
            return Reply(409, {"error": "This stub has no --webhook-target: no webhook could follow. Nothing changed."})
        kind, _ = found
        with self._lock:
            settled = self._settled.get(psp_id)
            if settled is None:
                settled = self._settle_now(kind, psp_id, outcome)
                if settled is None:
                    return Reply(409, {"error": f"{psp_id} is no longer open for payment. Nothing changed."})
                self._settled[psp_id] = settled
            elif settled.outcome != outcome:
                return Reply(409, {"error": f"{psp_id} already {settled.outcome}. Nothing changed."})
        delivery = self._deliver(settled.path, settled.event_name, psp_id, settled.build())
        answer: JSON = {
            "psp_id": psp_id,
            "provider": kind.split("_", 1)[0],
            "outcome": outcome,
            "status": (self.payment(psp_id) or ("", {}))[1].get("status"),
            "event": settled.event_name,
            "webhook": asdict(delivery),
        }
        if delivery.status_code is None:
            return Reply(502, {**answer, "error": f"Could not deliver the webhook: {delivery.error}"})
        return Reply(200, answer)

    def _settle_now(self, kind: str, psp_id: str, outcome: str) -> _Settled | None:
        """Change the payment's status and return how to build its webhook; None when it is not open."""
        if kind == "stripe_payment_intent":
            return self._settle_intent(psp_id, outcome)
        return self._settle_session(psp_id, outcome)

    def _settle_intent(self, psp_id: str, outcome: str) -> _Settled | None:
        state = self._stub._state
        if outcome == "succeeded":
            intent = state.find_any(psp_id)
            amount = intent[1]["amount"] if intent else 0
            changes: JSON = {
                "status": "succeeded",
                "amount_received": amount,
                "latest_charge": stripe_id("ch"),
                "payment_method": stripe_id("pm"),
            }
            event_type = "payment_intent.succeeded"
        else:  # the card is declined and the customer gives up: the intent is canceled
            changes = {
                "status": "canceled",
                "cancellation_reason": "abandoned",
                "canceled_at": int(time.time()),
                "last_payment_error": dict(_CARD_DECLINED),
            }
            event_type = "payment_intent.canceled"
        updated = state.update_object(psp_id, _OPEN_PAYMENT["stripe_payment_intent"], changes)
        if updated is None:
            return None
        event = stripe_event(event_type, updated)
        secret = self._stub.stripe_webhook_secret
        return _Settled(outcome, STRIPE_DEPOSIT_WEBHOOK_PATH, event_type, lambda: stripe_request(event, secret))

    def _settle_session(self, psp_id: str, outcome: str) -> _Settled | None:
        paid = outcome == "succeeded"
        changes = {"status": "completed" if paid else "refused", "paymentPspReference": adyen_reference()}
        session = self._stub._state.update_object(psp_id, _OPEN_PAYMENT["adyen_session"], changes)
        if session is None:
            return None
        amount = session.get("amount") or {}
        item = adyen_notification_item(
            self._stub.adyen_hmac_key,
            event_code="AUTHORISATION",
            psp_reference=str(session["paymentPspReference"]),
            merchant_reference=str(session.get("reference", "")),
            value=int(amount.get("value", 0)),
            currency=str(amount.get("currency", "")),
            success=paid,
            merchant_account=str(session.get("merchantAccount", "")),
            reason="" if paid else "Refused",
        )
        notification = adyen_notification([item])
        event_name = f"AUTHORISATION success={'true' if paid else 'false'}"
        return _Settled(
            outcome, ADYEN_DEPOSIT_WEBHOOK_PATH, event_name, lambda: adyen_notification_request(notification)
        )

    # Payouts ----------------------------------------------------------------

    def payout_created(self, kind: str, object_id: str, account: str | None) -> None:
        """A payout or transfer was just created: with a payout delay, settle it that much later (the test
        destinations fail, or never settle)."""
        delay = self._stub.payout_delay
        found = self._stub._state.find_any(object_id)
        if delay is None or kind not in PAYOUT_KINDS or found is None:
            return
        verdict = payout_verdict(kind, found[1], account)
        if verdict == "pending" or found[1].get("status") not in _OPEN_PAYOUT[kind]:
            return
        timer = threading.Timer(delay, self._finish_payout, (kind, object_id, account, verdict))
        timer.daemon = True
        timer.name = f"psp-stub-payout-{object_id}"
        with self._lock:
            self._timers[object_id] = timer
        timer.start()

    def _finish_payout(self, kind: str, object_id: str, account: str | None, verdict: str) -> None:
        """The payout's delay is over: give it its final status, then send the webhook that says so."""
        with self._lock:
            if self._timers.get(object_id) is not threading.current_thread():
                return  # cancelled (stop or reset) just as it fired
        try:
            if kind == "stripe_payout":
                self._finish_stripe_payout(object_id, account, verdict)
            else:
                self._finish_adyen_transfer(object_id, verdict)
        finally:
            with self._lock:
                self._timers.pop(object_id, None)

    def _finish_stripe_payout(self, object_id: str, account: str | None, verdict: str) -> None:
        state = self._stub._state
        if verdict == "paid":
            changes: JSON = {"status": "paid"}
        else:
            changes = {
                "status": "failed",
                "failure_code": "account_closed",
                "failure_message": _ACCOUNT_CLOSED,
                "failure_balance_transaction": stripe_id("txn"),
            }
        payout = state.update_object(object_id, _OPEN_PAYOUT["stripe_payout"], changes)
        if payout is None:
            return  # moved by hand meanwhile: that status stands
        if verdict == "failed" and account:  # a failed payout's money goes back to the connected account
            state.credit(account, str(payout["currency"]), int(payout["amount"]))
        event_type = f"payout.{payout['status']}"
        event = stripe_event(event_type, payout, account=account)
        self._deliver(
            STRIPE_PAYOUT_WEBHOOK_PATH, event_type, object_id, stripe_request(event, self._stub.stripe_webhook_secret)
        )

    def _finish_adyen_transfer(self, object_id: str, verdict: str) -> None:
        status = "booked" if verdict == "paid" else "failed"
        reason = "approved" if verdict == "paid" else "refusedByCounterpartyBank"
        changes = {"status": status, "reason": reason}
        transfer = self._stub._state.update_object(object_id, _OPEN_PAYOUT["adyen_transfer"], changes)
        if transfer is None:
            return
        webhook = adyen_transfer_request(adyen_transfer_webhook(transfer, status, reason), self._stub.adyen_hmac_key)
        self._deliver(ADYEN_PAYOUT_WEBHOOK_PATH, f"transfer {status}", object_id, webhook)

    # Delivery ---------------------------------------------------------------

    def _deliver(self, path: str, event: str, object_id: str, webhook: SignedWebhook) -> Delivery:
        """POST a signed webhook to the back office (when the stub has a target) and remember the answer."""
        target = self._stub.webhook_target
        if not target:
            delivery = Delivery(path, event, object_id, None, error="no webhook target")
        else:
            url = f"{target.rstrip('/')}{path}"
            try:
                response = post_webhook(url, webhook)
                delivery = Delivery(url, event, object_id, response.status_code, response.text[:500])
            except requests.RequestException as exc:
                delivery = Delivery(url, event, object_id, None, error=f"{type(exc).__name__}: {exc}"[:500])
        with self._lock:
            self._deliveries.append(delivery)
        return delivery


def is_open(kind: str, obj: JSON) -> bool:
    """Whether a payment may still be paid or declined."""
    return obj.get("status") in _OPEN_PAYMENT.get(kind, ())


def payout_verdict(kind: str, obj: JSON, account: str | None) -> str:
    """How a payout ends at this stub: ``failed`` or ``pending`` for the test destinations, else ``paid``."""
    if kind == "stripe_payout":
        return {STUB_FAILING_ACCOUNT: "failed", STUB_PENDING_ACCOUNT: "pending"}.get(account or "", "paid")
    counterparty = obj.get("counterparty") or {}
    instrument = counterparty.get("transferInstrumentId") if isinstance(counterparty, dict) else None
    return {STUB_FAILING_INSTRUMENT: "failed", STUB_PENDING_INSTRUMENT: "pending"}.get(str(instrument or ""), "paid")
