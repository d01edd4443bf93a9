"""A local Stripe/Adyen stand-in for tests and demos, driven through the real SDKs.

It serves the endpoints this project calls (Stripe PaymentIntents, Payouts and
Transfers; Adyen Checkout sessions and Transfers), honours idempotency keys,
injects failures on demand and sends correctly signed webhooks back to the app.
It needs only the standard library, ``requests``, ``stripe`` and ``Adyen``:
no Django.
"""

from .delivery import (
    post_webhook,
    send_adyen_notification,
    send_adyen_transfer_webhook,
    send_custody_deposit,
    send_stripe_event,
)
from .server import PSPStub
from .signing import (
    SignedWebhook,
    adyen_item_signature,
    adyen_notification,
    adyen_notification_item,
    adyen_notification_request,
    adyen_payload_signature,
    adyen_transfer_request,
    adyen_transfer_webhook,
    custody_request,
    custody_signature,
    stripe_event,
    stripe_request,
    stripe_signature_header,
)
from .state import ANY_KIND, DEFAULT_TIMEOUT_DELAY, KINDS, MODES, STUB_CONNECTED_ACCOUNT, RecordedRequest

__all__ = [
    "ANY_KIND",
    "DEFAULT_TIMEOUT_DELAY",
    "KINDS",
    "MODES",
    "PSPStub",
    "RecordedRequest",
    "STUB_CONNECTED_ACCOUNT",
    "SignedWebhook",
    "adyen_item_signature",
    "adyen_notification",
    "adyen_notification_item",
    "adyen_notification_request",
    "adyen_payload_signature",
    "adyen_transfer_request",
    "adyen_transfer_webhook",
    "custody_request",
    "custody_signature",
    "post_webhook",
    "send_adyen_notification",
    "send_adyen_transfer_webhook",
    "send_custody_deposit",
    "send_stripe_event",
    "stripe_event",
    "stripe_request",
    "stripe_signature_header",
]
