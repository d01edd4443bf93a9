"""A local Stripe/Adyen stand-in for tests and demos, driven through the real SDKs.

It serves the endpoints this project calls (Stripe PaymentIntents, Payouts and
Transfers; Adyen Checkout sessions and Transfers), honours idempotency keys,
injects failures on demand and sends correctly signed webhooks back to the app:
on demand, or by itself as a PSP in test mode does (a pay page, payouts paid
after a delay; :mod:`webhooks.stub.lifecycle`, docs/ops/local_psp.md).
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
from .lifecycle import (
    ADYEN_DEPOSIT_WEBHOOK_PATH,
    ADYEN_PAYOUT_WEBHOOK_PATH,
    DEFAULT_ADYEN_HMAC_KEY,
    DEFAULT_PAYOUT_DELAY_S,
    DEFAULT_STRIPE_WEBHOOK_SECRET,
    STRIPE_DEPOSIT_WEBHOOK_PATH,
    STRIPE_PAYOUT_WEBHOOK_PATH,
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
from .state import (
    ANY_KIND,
    DEFAULT_TIMEOUT_DELAY,
    KINDS,
    MODES,
    STUB_CONNECTED_ACCOUNT,
    STUB_FAILING_ACCOUNT,
    STUB_FAILING_INSTRUMENT,
    STUB_PENDING_ACCOUNT,
    STUB_PENDING_INSTRUMENT,
    RecordedRequest,
)

__all__ = [
    "ADYEN_DEPOSIT_WEBHOOK_PATH",
    "ADYEN_PAYOUT_WEBHOOK_PATH",
    "ANY_KIND",
    "DEFAULT_ADYEN_HMAC_KEY",
    "DEFAULT_PAYOUT_DELAY_S",
    "DEFAULT_STRIPE_WEBHOOK_SECRET",
    "DEFAULT_TIMEOUT_DELAY",
    "KINDS",
    "MODES",
    "PSPStub",
    "RecordedRequest",
    "STRIPE_DEPOSIT_WEBHOOK_PATH",
    "STRIPE_PAYOUT_WEBHOOK_PATH",
    "STUB_CONNECTED_ACCOUNT",
    "STUB_FAILING_ACCOUNT",
    "STUB_FAILING_INSTRUMENT",
    "STUB_PENDING_ACCOUNT",
    "STUB_PENDING_INSTRUMENT",
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
