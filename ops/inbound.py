"""Inbound PSP HTTP, provider-neutral: the one body limit, JSON parsing, signature checks and error wrapper.

Every webhook endpoint (deposits in `webhooks.views`, payout outcomes in `payouts.webhooks`) reads its
raw body here, checks its signature here before anything is parsed or stored, and answers any refusal
as `application/problem+json` through `problem_json_refusals`. The kernel knows no product: each caller
passes its `Refusals`, the problem types it has always answered with (`webhook/...` for deposits,
`payouts/invalid-webhook` for payouts), so a PSP sees the same status codes and bodies as before.

Signatures, each computed one way for both checking and (for the canary's simulated deliveries) signing:

* Stripe: `stripe.WebhookSignature.verify_header(body, Stripe-Signature, STRIPE_WEBHOOK_SECRET, tolerance=300)`,
  which refuses a timestamp older than 300 s; one more than 300 s in the future is refused here too;
* Adyen Transfers (Balance Platform): header `HmacSignature`, base64 HMAC-SHA256 of the raw body
  (`Adyen.util.generate_payload_sig`, hex key ADYEN_HMAC_KEY);
* a shared key: hex HMAC-SHA256 of the raw body (custody deposits' `X-Webhook-Signature`).

Adyen's standard notifications (deposits) sign each item, not the body: `webhooks.verification` checks them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from .errors import ApplicationError, problem_json_response

logger = logging.getLogger(__name__)

STRIPE_TOLERANCE_S = 300


@dataclass(frozen=True)
class Refusals:
    """The problem types an endpoint answers with; `media_type` None accepts any Content-Type."""

    too_large: type[ApplicationError]
    malformed: type[ApplicationError]
    bad_signature: type[ApplicationError]
    not_configured: type[ApplicationError]
    media_type: type[ApplicationError] | None = None


def raw_body(request: HttpRequest, refusals: Refusals) -> bytes:
    """Return the raw body within WEBHOOK_MAX_BODY_BYTES (refused before it is read when declared larger)."""
    limit = int(settings.WEBHOOK_MAX_BODY_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise refusals.too_large(f"The body is {declared} bytes; the limit is {limit}.")
    if refusals.media_type is not None:
        content_type = (request.content_type or "").lower()
        if content_type != "application/json":
            raise refusals.media_type(f"Send the body as application/json, not {content_type or 'nothing'}.")
    try:
        body = request.body
    except RequestDataTooBig:
        raise refusals.too_large(f"The body is over the limit of {limit} bytes.") from None
    if len(body) > limit:
        raise refusals.too_large(f"The body is {len(body)} bytes; the limit is {limit}.")
    return body


def json_object(body: bytes, refusals: Refusals) -> dict[str, Any]:
    """Parse a JSON object from the raw body, or refuse it (an array, a string, invalid JSON)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise refusals.malformed("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise refusals.malformed("The body is not a JSON object.")
    return payload


def stripe_signature_verify(*, body: bytes, header: str, refusals: Refusals) -> None:
    """Check `Stripe-Signature` against STRIPE_WEBHOOK_SECRET on the raw body, and its timestamp: neither
    older nor further in the future than STRIPE_TOLERANCE_S (the SDK refuses only the old ones)."""
    import stripe

    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise refusals.not_configured("STRIPE_WEBHOOK_SECRET is not set; cannot verify Stripe webhooks.")
    if not header:
        raise refusals.bad_signature("The Stripe-Signature header is missing.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise refusals.malformed("The body is not UTF-8.") from None
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance=STRIPE_TOLERANCE_S)
    except stripe.SignatureVerificationError:
        raise refusals.bad_signature(
            f"The Stripe-Signature does not match, or its timestamp is older than {STRIPE_TOLERANCE_S} s."
        ) from None
    timestamp = _stripe_timestamp(header)
    if timestamp is None or timestamp > time.time() + STRIPE_TOLERANCE_S:
        raise refusals.bad_signature(
            f"The Stripe-Signature's timestamp is more than {STRIPE_TOLERANCE_S} s in the future."
        )


def _stripe_timestamp(header: str) -> int | None:
    """The `t=` of a Stripe-Signature header (already verified: the signature covers it)."""
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def adyen_payload_signature(body: bytes, hmac_key_hex: str) -> str:
    """Return the `HmacSignature` Adyen puts on a Balance Platform webhook's raw body."""
    from Adyen.util import generate_payload_sig

    return str(generate_payload_sig(body, hmac_key_hex).decode("ascii"))


def adyen_payload_signature_verify(*, body: bytes, signature: str, refusals: Refusals) -> None:
    """Check an Adyen Balance Platform webhook's `HmacSignature` against ADYEN_HMAC_KEY, in constant time."""
    key = settings.ADYEN_HMAC_KEY
    if not key:
        raise refusals.not_configured("ADYEN_HMAC_KEY is not set; cannot verify Adyen webhooks.")
    if not signature:
        raise refusals.bad_signature("The HmacSignature header is missing; nothing was changed.")
    expected = adyen_payload_signature(body, key)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise refusals.bad_signature("Invalid HmacSignature; nothing was changed.")


def hmac_sha256_hex(body: bytes, key: str) -> str:
    """Return the hex HMAC-SHA256 of the raw body under a shared key."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def hmac_sha256_hex_verify(*, body: bytes, signature: str, key: str, header: str, refusals: Refusals) -> None:
    """Check a hex HMAC-SHA256 signature header (named `header`) of the raw body, in constant time."""
    if not signature:
        raise refusals.bad_signature(f"The {header} header is missing.")
    if not hmac.compare_digest(hmac_sha256_hex(body, key), signature.strip().lower()):
        raise refusals.bad_signature(f"{header} does not match the body.")


View = Callable[[HttpRequest], HttpResponse]


def problem_json_refusals(view: View) -> View:
    """Answer an ApplicationError raised by a plain Django view as problem+json, and log the refusal."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        try:
            return view(request)
        except ApplicationError as exc:
            logger.warning("%s %s refused: %s %s", request.method, request.path, exc.code, exc.detail)
            return problem_json_response(exc.problem())

    return wrapper
