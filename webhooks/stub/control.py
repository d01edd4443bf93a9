"""HTTP control endpoints under ``/_stub/``, to steer a stub running in another process.

Documented for developers, with the pay page and the test destinations, in docs/ops/local_psp.md.

* ``GET  /_stub/requests``                 -> ``{"requests": [...]}``
* ``GET  /_stub/submissions?key=K``        -> ``{"idempotency_key": K, "submissions": n}`` (creates executed)
* ``GET  /_stub/calls?key=K&path=P``       -> ``{"idempotency_key": K, "path": P, "calls": n}``: HTTP requests
  received with that key and/or on that path prefix, replays included (both filters optional)
* ``GET  /_stub/call-stats``               -> ``{"calls": {K: {"calls", "executed", "in_flight", "max_in_flight"}}}``:
  per idempotency key, the API POSTs received (replays and failures included), the creates executed, the calls
  held right now and the most ever held at once (read only)
* ``POST /_stub/mode``  ``{"kind", "mode", "times"?, "delay"?}``
* ``POST /_stub/reset``
* ``POST /_stub/objects/{id}``             ``{"status"}`` -> the object with its new status (what status calls return)
* ``POST /_stub/webhooks/stripe``          ``{"target_url", "secret", "type", "object", "event_id"?, "timestamp"?}``
* ``POST /_stub/webhooks/adyen``           ``{"target_url", "hmac_key", "items": [{...}], "basic_auth"?: [user, pw]}``
  where each item holds :func:`~webhooks.stub.signing.adyen_notification_item` keyword
  arguments (``event_code``, ``psp_reference``, ``merchant_reference``, ``value``, ``currency``...).
* ``POST /_stub/webhooks/adyen-transfer``  ``{"target_url", "transfer", "status", "hmac_key", "reason"?}``
* ``POST /_stub/webhooks/custody``         ``{"target_url", "payload", "key"}``
* ``GET  /_stub/prices/{source}/{instrument}/{YYYY-MM-DD}`` -> ``{"close": "18123.45"}``, a demo
  closing price that is the same for every source and changes with the date (for `make run`'s oracle).
* ``GET  /_stub/pay/{psp_id}``             -> the pay page (HTML) of a PaymentIntent or Checkout session
* ``POST /_stub/pay/{psp_id}``             ``{"outcome": "succeeded"|"failed"}`` (JSON, or the page's form) ->
  ``{"psp_id", "provider", "outcome", "status", "event", "webhook": {"url", "status_code", ...}}``: pays or
  declines it and sends its webhook to the webhook target (:mod:`webhooks.stub.lifecycle`)
* ``GET  /_stub/deliveries``               -> ``{"deliveries": [...]}``: the webhooks the stub sent by itself
  (payments settled, payouts finished after the payout delay) and the back office's answers

Webhook endpoints answer ``{"status_code", "body", "sent"}`` with the target's reply.
Instead of ``target_url`` they accept ``path``, joined to the stub's ``webhook_target``
(``python -m webhooks.stub --webhook-target http://127.0.0.1:8000``).
"""

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

import requests

from .delivery import post_webhook
from .lifecycle import is_open
from .pay_page import not_found_page, page
from .routing import Incoming
from .signing import (
    SignedWebhook,
    adyen_notification,
    adyen_notification_item,
    adyen_notification_request,
    adyen_transfer_request,
    adyen_transfer_webhook,
    custody_request,
    stripe_event,
    stripe_request,
)
from .state import JSON, Reply

if TYPE_CHECKING:
    from .server import PSPStub

WEBHOOK_PREFIX = "webhooks/"
PAY_PREFIX = "pay/"
FORM = "application/x-www-form-urlencoded"


def handle(stub: "PSPStub", request: Incoming) -> Reply:
    """Answer a ``/_stub/...`` request; bad input is a 400 with the reason."""
    action = request.path.split("/_stub/", 1)[1]
    try:
        if action.startswith(PAY_PREFIX):
            return _pay(stub, request, unquote(action.removeprefix(PAY_PREFIX)))
        body = json.loads(request.raw or b"{}")
        return _dispatch(stub, request, action, body)
    except (ValueError, TypeError, KeyError) as exc:
        return Reply(400, {"error": f"{type(exc).__name__}: {exc}"})


def demo_close(day: str) -> str:
    """A deterministic demo close for a date: 18,000.00 plus a per-day offset in cents."""
    import hashlib
    from datetime import date

    date.fromisoformat(day)  # refuse anything that is not a date
    offset = int(hashlib.sha256(day.encode()).hexdigest()[:8], 16) % 100_000
    return f"{18_000 + offset // 100}.{offset % 100:02d}"


def _dispatch(stub: "PSPStub", request: Incoming, action: str, body: JSON) -> Reply:
    if request.method == "GET" and action.startswith("prices/"):
        _source, _instrument, day = action.removeprefix("prices/").split("/")
        return Reply(200, {"close": demo_close(day)})
    if request.method == "GET" and action == "requests":
        return Reply(200, {"requests": [dataclasses.asdict(record) for record in stub.requests]})
    if request.method == "GET" and action == "submissions":
        key = request.query["key"]
        return Reply(200, {"idempotency_key": key, "submissions": stub.submissions(key)})
    if request.method == "GET" and action == "calls":
        key_filter, path_filter = request.query.get("key"), request.query.get("path")
        calls = stub.calls(key_filter, path_filter)
        return Reply(200, {"idempotency_key": key_filter, "path": path_filter, "calls": calls})
    if request.method == "GET" and action == "deliveries":
        return Reply(200, {"deliveries": stub.deliveries()})
    if request.method == "GET" and action == "call-stats":
        return Reply(200, {"calls": stub.call_stats()})
    if request.method == "POST" and action == "mode":
        stub.set_mode(body["kind"], body["mode"], body.get("times"), body.get("delay"))
        return Reply(200, {"ok": True})
    if request.method == "POST" and action.startswith("objects/"):
        return Reply(200, stub.set_object_status(action.removeprefix("objects/"), str(body["status"])))
    if request.method == "POST" and action == "connected_accounts":
        stub.add_connected_account(str(body["account"]))
        return Reply(200, {"ok": True, "account": str(body["account"])})
    if request.method == "POST" and action == "reset":
        stub.reset()
        return Reply(200, {"ok": True})
    if request.method == "POST" and action.startswith(WEBHOOK_PREFIX):
        return _send_webhook(action.removeprefix(WEBHOOK_PREFIX), body, _target(stub, body))
    return Reply(404, {"error": f"No control endpoint {request.method} /_stub/{action}"})


def _pay(stub: "PSPStub", request: Incoming, psp_id: str) -> Reply:
    """The pay page (GET) and its settlement (POST, JSON or the page's form: then the answer is the page)."""
    if request.method == "GET":
        found = stub.lifecycle.payment(psp_id)
        if found is None:
            return Reply(404, {"error": "not found"}, html=not_found_page(psp_id))
        return Reply(200, {}, html=page(*found, is_open=is_open(*found)))
    from_form = request.content_type == FORM
    if from_form:
        outcome = dict(parse_qsl(request.raw.decode("utf-8", "replace"))).get("outcome", "")
    else:
        body = json.loads(request.raw or b"{}")
        outcome = body.get("outcome", "") if isinstance(body, dict) else ""
    reply = stub.lifecycle.settle(psp_id, str(outcome))
    if not from_form:
        return reply
    found = stub.lifecycle.payment(psp_id)
    if found is None:
        return Reply(reply.status, reply.body, html=not_found_page(psp_id))
    if reply.status == 200:
        webhook = reply.body["webhook"]
        message = f"{reply.body['outcome']}: {reply.body['event']} sent, the back office answered HTTP {webhook['status_code']}"
    else:
        message = str(reply.body.get("error", ""))
    return Reply(reply.status, reply.body, html=page(*found, is_open=is_open(*found), message=message))


def _stripe(body: JSON) -> tuple[JSON, SignedWebhook]:
    event = stripe_event(body["type"], body["object"], body.get("event_id"))
    return event, stripe_request(event, body["secret"], body.get("timestamp"))


def _adyen(body: JSON) -> tuple[JSON, SignedWebhook]:
    items = [adyen_notification_item(body["hmac_key"], **item) for item in body["items"]]
    notification = adyen_notification(items, live=bool(body.get("live", False)))
    auth = body.get("basic_auth")
    basic_auth = (str(auth[0]), str(auth[1])) if auth else None
    return notification, adyen_notification_request(notification, basic_auth)


def _adyen_transfer(body: JSON) -> tuple[JSON, SignedWebhook]:
    webhook = adyen_transfer_webhook(body["transfer"], body["status"], body.get("reason"))
    return webhook, adyen_transfer_request(webhook, body["hmac_key"])


def _custody(body: JSON) -> tuple[JSON, SignedWebhook]:
    return body["payload"], custody_request(body["payload"], body["key"])


_BUILDERS: dict[str, Callable[[JSON], tuple[JSON, SignedWebhook]]] = {
    "stripe": _stripe,
    "adyen": _adyen,
    "adyen-transfer": _adyen_transfer,
    "custody": _custody,
}


def _target(stub: "PSPStub", body: JSON) -> str:
    """``target_url``, or ``path`` under the stub's default webhook target."""
    if body.get("target_url"):
        return str(body["target_url"])
    if stub.webhook_target:
        return f"{stub.webhook_target.rstrip('/')}/{str(body.get('path', '')).lstrip('/')}"
    raise ValueError("target_url is required: this stub has no default webhook target.")


def _send_webhook(name: str, body: JSON, target_url: str) -> Reply:
    if name not in _BUILDERS:
        return Reply(404, {"error": f"No webhook kind {name!r}; expected one of {sorted(_BUILDERS)}"})
    sent, webhook = _BUILDERS[name](body)
    try:
        response = post_webhook(target_url, webhook)
    except requests.RequestException as exc:
        return Reply(502, {"error": f"Could not deliver to {target_url}: {exc}", "sent": sent})
    return Reply(200, {"status_code": response.status_code, "body": response.text, "sent": sent})
