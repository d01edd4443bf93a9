"""POST signed PSP webhooks to a target URL (the Django app) with ``requests``.

Bodies and signatures come from :mod:`webhooks.stub.signing`; these functions
only send them and return the target's response.
"""

from typing import Any

import requests

from .signing import (
    SignedWebhook,
    adyen_notification_request,
    adyen_transfer_request,
    adyen_transfer_webhook,
    custody_request,
    stripe_request,
)

JSON = dict[str, Any]
DEFAULT_TIMEOUT = 10.0


def post_webhook(target_url: str, webhook: SignedWebhook, timeout: float = DEFAULT_TIMEOUT) -> requests.Response:
    """POST the exact signed bytes to ``target_url``."""
    return requests.post(target_url, data=webhook.body, headers=webhook.headers, timeout=timeout)


def send_stripe_event(
    target_url: str, event: JSON, secret: str, timestamp: int | None = None, timeout: float = DEFAULT_TIMEOUT
) -> requests.Response:
    """Deliver a Stripe Event signed with the endpoint ``secret``."""
    return post_webhook(target_url, stripe_request(event, secret, timestamp), timeout)


def send_adyen_notification(
    target_url: str, body: JSON, basic_auth: tuple[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> requests.Response:
    """Deliver an Adyen standard notification (items already signed)."""
    return post_webhook(target_url, adyen_notification_request(body, basic_auth), timeout)


def send_adyen_transfer_webhook(
    target_url: str,
    transfer: JSON,
    status: str,
    hmac_key_hex: str,
    reason: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> requests.Response:
    """Deliver ``balancePlatform.transfer.updated`` for ``transfer`` now in ``status``."""
    webhook = adyen_transfer_webhook(transfer, status, reason)
    return post_webhook(target_url, adyen_transfer_request(webhook, hmac_key_hex), timeout)


def send_custody_deposit(
    target_url: str, payload: JSON, key: str, timeout: float = DEFAULT_TIMEOUT
) -> requests.Response:
    """Deliver a custody deposit webhook signed with the shared ``key``."""
    return post_webhook(target_url, custody_request(payload, key), timeout)
