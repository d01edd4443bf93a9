"""The Stripe half of the PSP stub: form decoding, objects and error bodies.

Connect: a Transfer's ``destination`` must be a connected account the stub knows (else 400 ``No such
destination``); a request with a ``Stripe-Account`` header acts on that account (unknown: 403
``account_invalid``), so a payout made there is paid from the connected account's balance, which
Transfers fill (too little: 400 ``balance_insufficient``), and is found only on that account.

Object and error shapes follow Stripe's API reference (https://docs.stripe.com/api):
PaymentIntent, Payout, Transfer and the ``{"error": {...}}`` envelope, which the
stripe SDK turns into ``CardError`` (402), ``InvalidRequestError`` (400/404),
``IdempotencyError`` (400, type ``idempotency_error``), ``AuthenticationError``
(401) and ``APIError`` (500).
"""

import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import stripe

from .ids import stripe_id, token
from .state import JSON, Created, Reply

_KEY_PART = re.compile(r"[^\[\]]+")
_TWO_DAYS = 2 * 24 * 60 * 60
_REQUIRED = {
    "stripe_payment_intent": ("amount", "currency"),
    "stripe_payout": ("amount", "currency"),
    "stripe_transfer": ("amount", "currency", "destination"),
}
_OBJECT_NAMES = {
    "stripe_payment_intent": ("payment_intent", "intent"),
    "stripe_payout": ("payout", "payout"),
    "stripe_transfer": ("transfer", "transfer"),
}


def decode_form(raw: str) -> JSON:
    """Decode Stripe's form encoding (``metadata[a]=b``, ``types[0]=card``) to nested data."""
    root: JSON = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        *parents, leaf = _KEY_PART.findall(key) or [key]
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return _lists_from_indexes(root)


def _lists_from_indexes(node: Any, name: str = "") -> Any:
    """Turn ``{"0": a, "1": b}`` back into ``[a, b]``, except inside metadata."""
    if not isinstance(node, dict):
        return node
    items = {key: _lists_from_indexes(value, key) for key, value in node.items()}
    if name != "metadata" and items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def _booleans(value: Any) -> Any:
    """Turn form-encoded ``"true"``/``"false"`` back into booleans, recursively."""
    if isinstance(value, dict):
        return {key: _booleans(item) for key, item in value.items()}
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


def payment_intent(params: JSON) -> JSON:
    """A freshly created PaymentIntent, waiting for a payment method."""
    intent_id = stripe_id("pi")
    intent: JSON = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": int(params["amount"]),
        "amount_capturable": 0,
        "amount_received": 0,
        "capture_method": params.get("capture_method", "automatic_async"),
        "client_secret": f"{intent_id}_secret_{token(25)}",
        "confirmation_method": params.get("confirmation_method", "automatic"),
        "created": int(time.time()),
        "currency": params["currency"].lower(),
        "customer": params.get("customer"),
        "description": params.get("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": params.get("metadata", {}),
        "payment_method": None,
        "payment_method_types": params.get("payment_method_types", ["card"]),
        "receipt_email": params.get("receipt_email"),
        "status": "requires_payment_method",
    }
    if "automatic_payment_methods" in params:
        intent["automatic_payment_methods"] = _booleans(params["automatic_payment_methods"])
    return intent


def payout(params: JSON) -> JSON:
    """A freshly created Payout, pending until the bank confirms it."""
    created = int(time.time())
    return {
        "id": stripe_id("po"),
        "object": "payout",
        "amount": int(params["amount"]),
        "arrival_date": created + _TWO_DAYS,
        "automatic": False,
        "balance_transaction": stripe_id("txn"),
        "created": created,
        "currency": params["currency"].lower(),
        "description": params.get("description"),
        "destination": params.get("destination") or stripe_id("ba"),
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": params.get("metadata", {}),
        "method": params.get("method", "standard"),
        "source_type": params.get("source_type", "card"),
        "statement_descriptor": params.get("statement_descriptor"),
        "status": "pending",
        "type": "bank_account",
    }


def transfer(params: JSON) -> JSON:
    """A freshly created Transfer to a connected account."""
    transfer_id = stripe_id("tr")
    return {
        "id": transfer_id,
        "object": "transfer",
        "amount": int(params["amount"]),
        "amount_reversed": 0,
        "balance_transaction": stripe_id("txn"),
        "created": int(time.time()),
        "currency": params["currency"].lower(),
        "description": params.get("description"),
        "destination": params["destination"],
        "destination_payment": stripe_id("py"),
        "livemode": False,
        "metadata": params.get("metadata", {}),
        "reversals": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/transfers/{transfer_id}/reversals",
        },
        "reversed": False,
        "source_transaction": params.get("source_transaction"),
        "source_type": "card",
        "transfer_group": params.get("transfer_group"),
    }


_BUILDERS = {
    "stripe_payment_intent": payment_intent,
    "stripe_payout": payout,
    "stripe_transfer": transfer,
}


def _headers() -> dict[str, str]:
    return {"Request-Id": stripe_id("req"), "Stripe-Version": str(stripe.api_version)}


def error_reply(status: int, error_type: str, message: str, **fields: Any) -> Reply:
    """A Stripe error envelope; ``None`` fields are left out, as Stripe does."""
    error = {"type": error_type, "message": message}
    error.update({name: value for name, value in fields.items() if value is not None})
    return Reply(status, {"error": error}, _headers())


def card_declined(params: JSON) -> Created:
    """HTTP 402 ``card_error``; the PaymentIntent exists, carrying the decline."""
    intent = payment_intent(params)
    error = {
        "code": "card_declined",
        "decline_code": "generic_decline",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": "Your card was declined.",
        "type": "card_error",
    }
    intent["last_payment_error"] = error
    reply = error_reply(
        402, "card_error", error["message"], **_without(error, "type", "message"), payment_intent=intent
    )
    return Created(reply, intent)


def balance_insufficient(kind: str) -> Created:
    """HTTP 400 ``balance_insufficient``: how Stripe refuses a payout or transfer."""
    noun = "payout" if kind == "stripe_payout" else "transfer"
    message = f"You have insufficient funds in your Stripe account for this {noun}."
    reply = error_reply(
        400,
        "invalid_request_error",
        message,
        code="balance_insufficient",
        doc_url="https://stripe.com/docs/error-codes/balance-insufficient",
    )
    return Created(reply)


def no_such_destination(account: str) -> Reply:
    """HTTP 400 for a Transfer to an account the platform does not have: ``No such destination``."""
    return error_reply(
        400,
        "invalid_request_error",
        f"No such destination: '{account}'",
        code="resource_missing",
        doc_url="https://stripe.com/docs/error-codes/resource-missing",
        param="destination",
    )


def account_invalid(account: str) -> Reply:
    """HTTP 403 for a ``Stripe-Account`` header naming an account the platform cannot act on."""
    message = (
        f"The provided key does not have access to account '{account}' (or that account does not exist). "
        "Application access may have been revoked."
    )
    return error_reply(403, "invalid_request_error", message, code="account_invalid")


def _without(mapping: Mapping[str, Any], *names: str) -> JSON:
    return {key: value for key, value in mapping.items() if key not in names}


class StripeAPI:
    """Implements :class:`~webhooks.stub.routing.Provider` for Stripe's v1 API."""

    name = "stripe"

    def parse_body(self, raw: bytes) -> JSON:
        return decode_form(raw.decode("utf-8"))

    def authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(key.strip())

    def unauthorized(self) -> Reply:
        message = (
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
        )
        return error_reply(401, "invalid_request_error", message)

    def not_found(self, method: str, path: str) -> Reply:
        return error_reply(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def invalid(self, kind: str, params: JSON) -> Reply | None:
        for name in _REQUIRED[kind]:
            if not params.get(name):
                return error_reply(
                    400,
                    "invalid_request_error",
                    f"Missing required param: {name}.",
                    code="parameter_missing",
                    param=name,
                )
        if not str(params["amount"]).isdigit():
            message = f"Invalid integer: {params['amount']}"
            return error_reply(400, "invalid_request_error", message, code="parameter_invalid_integer", param="amount")
        return None

    def create(self, kind: str, params: JSON) -> Created:
        obj = _BUILDERS[kind](params)
        return Created(Reply(200, obj, _headers()), obj)

    def decline(self, kind: str, params: JSON) -> Created:
        if kind == "stripe_payment_intent":
            return card_declined(params)
        return balance_insufficient(kind)

    def server_error(self, kind: str) -> Reply:
        return error_reply(500, "api_error", "An unknown error occurred (PSP stub failure mode).")

    def replay(self, reply: Reply) -> Reply:
        headers = {**reply.headers, "Idempotent-Replayed": "true", "Original-Request": reply.headers["Request-Id"]}
        return Reply(reply.status, reply.body, {**headers, "Request-Id": stripe_id("req")})

    def key_reused(self, idempotency_key: str) -> Reply:
        message = (
            "Keys for idempotent requests can only be used with the same parameters they were first used with. "
            f"Try using a key other than '{idempotency_key}' if you meant to execute a different request."
        )
        return error_reply(400, "idempotency_error", message)

    def found(self, obj: JSON) -> Reply:
        return Reply(200, obj, _headers())

    def listed(self, objects: list[JSON], query: dict[str, str]) -> Reply:
        """A Stripe list (newest first), ``limit`` honoured (default 10, at most 100), ``destination`` and
        ``transfer_group`` filters applied (Transfers)."""
        limit = max(1, min(int(query.get("limit", 10)), 100))
        for name in ("destination", "transfer_group"):
            if name in query:
                objects = [obj for obj in objects if obj.get(name) == query[name]]
        newest = sorted(objects, key=lambda obj: obj.get("created", 0), reverse=True)
        url = "/v1/transfers" if newest and newest[0].get("object") == "transfer" else "/v1/payouts"
        body = {"object": "list", "data": newest[:limit], "has_more": len(newest) > limit, "url": url}
        return Reply(200, body, _headers())

    def missing(self, kind: str, object_id: str) -> Reply:
        noun, param = _OBJECT_NAMES[kind]
        return error_reply(
            404,
            "invalid_request_error",
            f"No such {noun}: '{object_id}'",
            code="resource_missing",
            doc_url="https://stripe.com/docs/error-codes/resource-missing",
            param=param,
        )
