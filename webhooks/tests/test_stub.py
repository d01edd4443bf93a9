"""Tests for the PSP stub, driven through the real stripe and Adyen SDKs.

Plain pytest: no Django, no database, no network beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import Adyen
import pytest
import requests
import stripe
from Adyen.util import is_valid_hmac_notification, is_valid_hmac_payload

from webhooks.stub import (
    KINDS,
    STUB_CONNECTED_ACCOUNT,
    PSPStub,
    adyen_item_signature,
    adyen_notification,
    adyen_notification_item,
    adyen_payload_signature,
    custody_signature,
    send_adyen_notification,
    send_adyen_transfer_webhook,
    send_custody_deposit,
    send_stripe_event,
    stripe_event,
    stripe_signature_header,
)

if TYPE_CHECKING:
    from stripe.params import PaymentIntentCreateParams, PayoutCreateParams, TransferCreateParams

JSON = dict[str, Any]

STRIPE_KEY = "sk_test_stub"
ADYEN_KEY = "adyen_test_key"
WEBHOOK_SECRET = "whsec_test_secret"
# Adyen's published example HMAC key (see test_adyen_signer_reproduces_published_vector).
ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
CUSTODY_KEY = "custody-test-key"
CLIENT_TIMEOUT = 1

PAYMENT_INTENT: PaymentIntentCreateParams = {
    "amount": 2500,
    "currency": "eur",
    "metadata": {"deposit_id": "dep_1"},
    "payment_method_types": ["card"],  # type: ignore[typeddict-unknown-key]  # a real Stripe param the SDK's types omit
}
PAYOUT: PayoutCreateParams = {"amount": 1000, "currency": "eur", "metadata": {"payout_id": "wd_1"}}
STRIPE_TRANSFER: TransferCreateParams = {"amount": 1000, "currency": "eur", "destination": STUB_CONNECTED_ACCOUNT}
SESSION: JSON = {
    "amount": {"value": 2500, "currency": "EUR"},
    "reference": "dep_1",
    "merchantAccount": "TestMerchant",
    "returnUrl": "https://example.test/return",
}
ADYEN_TRANSFER: JSON = {
    "amount": {"value": 1000, "currency": "EUR"},
    "balanceAccountId": "BA_TEST",
    "category": "bank",
    "counterparty": {"transferInstrumentId": "SE1234567890ABC1234567890"},
    "reference": "wd_1",
}


# Fixtures -------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[PSPStub]:
    before = set(threading.enumerate())
    with PSPStub() as running:
        yield running
    assert set(threading.enumerate()) <= before, "PSPStub.stop() left threads behind"


@pytest.fixture
def stripe_client(stub: PSPStub) -> stripe.StripeClient:
    return stripe.StripeClient(
        STRIPE_KEY,
        base_addresses={"api": stub.url},
        http_client=stripe.RequestsClient(timeout=CLIENT_TIMEOUT),
        max_network_retries=0,
    )


@pytest.fixture
def adyen(stub: PSPStub) -> Adyen.Adyen:
    client = Adyen.Adyen(xapikey=ADYEN_KEY, http_timeout=CLIENT_TIMEOUT)
    client.checkout.payments_api.baseUrl = stub.adyen_checkout_url
    client.transfers.transfers_api.baseUrl = stub.adyen_transfers_url
    return client


class Receiver:
    """A throwaway target app: records every POST (headers, raw body) and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({name.lower(): value for name, value in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b"[accepted]")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def last(self) -> tuple[dict[str, str], bytes]:
        return self.received[-1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _creates(client: stripe.StripeClient, adyen: Adyen.Adyen) -> dict[str, Callable[[str], str]]:
    """One create per endpoint kind, each taking an idempotency key and returning the object id."""
    return {
        "stripe_payment_intent": lambda key: (
            client.v1.payment_intents.create(params=PAYMENT_INTENT, options={"idempotency_key": key}).id
        ),
        "stripe_payout": lambda key: client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": key}).id,
        "stripe_transfer": lambda key: (
            client.v1.transfers.create(params=STRIPE_TRANSFER, options={"idempotency_key": key}).id
        ),
        "adyen_session": lambda key: adyen.checkout.payments_api.sessions(SESSION, idempotency_key=key).message["id"],
        "adyen_transfer": lambda key: adyen.transfers.transfers_api.transfer_funds(
            ADYEN_TRANSFER, idempotency_key=key
        ).message["id"],
    }


def _handler_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "process_request_thread" in thread.name]


def _eventually(condition: Callable[[], bool], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# The real SDKs against the stub ---------------------------------------------


def test_stripe_payment_intent_create_and_retrieve(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    intent = stripe_client.v1.payment_intents.create(params=PAYMENT_INTENT, options={"idempotency_key": "dep_1"})

    assert intent.id.startswith("pi_")
    assert intent.object == "payment_intent"
    assert (intent.amount, intent.currency, intent.status) == (2500, "eur", "requires_payment_method")
    assert intent.client_secret is not None and intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.metadata["deposit_id"] == "dep_1"
    assert stripe_client.v1.payment_intents.retrieve(intent.id).id == intent.id

    create, retrieve = stub.requests
    assert (create.method, create.path, create.kind, create.status) == (
        "POST",
        "/v1/payment_intents",
        "stripe_payment_intent",
        200,
    )
    assert create.body == {**PAYMENT_INTENT, "amount": "2500"}  # form-encoded on the wire
    assert create.headers["authorization"] == f"Bearer {STRIPE_KEY}"
    assert create.idempotency_key == create.headers["idempotency-key"] == "dep_1"
    assert create.response is not None and create.response["id"] == intent.id
    assert (retrieve.method, retrieve.path) == ("GET", f"/v1/payment_intents/{intent.id}")


def test_stripe_payout_create(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    payout = stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "wd_1"})

    assert payout.id.startswith("po_")
    assert (payout.object, payout.status, payout.amount, payout.currency) == ("payout", "pending", 1000, "eur")
    assert payout.metadata is not None and payout.metadata["payout_id"] == "wd_1"
    assert stripe_client.v1.payouts.retrieve(payout.id).status == "pending"


def test_stripe_transfer_create(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    transfer = stripe_client.v1.transfers.create(params=STRIPE_TRANSFER, options={"idempotency_key": "wd_2"})

    assert transfer.id.startswith("tr_")
    assert (transfer.object, transfer.amount, transfer.destination) == ("transfer", 1000, STUB_CONNECTED_ACCOUNT)
    assert stub.requests[0].path == "/v1/transfers"


def test_stripe_missing_param_is_invalid_request(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.payouts.create(params={"currency": "eur"})  # type: ignore[typeddict-item]  # no amount: the point

    assert (caught.value.http_status, caught.value.code, caught.value.param) == (400, "parameter_missing", "amount")


def test_stripe_retrieve_unknown_object_is_404(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.payment_intents.retrieve("pi_missing")

    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_adyen_checkout_session(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    result = adyen.checkout.payments_api.sessions(SESSION, idempotency_key="dep_1")

    assert result.status_code == 201
    session = result.message
    assert session["id"].startswith("CS") and session["sessionData"]
    assert (session["amount"], session["reference"]) == (SESSION["amount"], "dep_1")
    assert datetime.fromisoformat(session["expiresAt"]) > datetime.now(UTC)
    record = stub.requests[0]
    assert (record.path, record.kind, record.body) == ("/adyen/checkout/v72/sessions", "adyen_session", SESSION)
    assert record.headers["x-api-key"] == ADYEN_KEY
    assert record.idempotency_key == "dep_1"


def test_adyen_transfer_funds(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    result = adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER, idempotency_key="wd_1")

    assert result.status_code == 202
    transfer = result.message
    assert transfer["status"] == "authorised" and len(transfer["id"]) == 16
    assert (transfer["amount"], transfer["reference"]) == (ADYEN_TRANSFER["amount"], "wd_1")
    assert stub.requests[0].path == "/adyen/btl/v4/transfers"


def test_routes_on_path_suffix_under_any_base_url(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    adyen.transfers.transfers_api.baseUrl = stub.url  # the SDK appends "/transfers"
    adyen.checkout.payments_api.baseUrl = f"{stub.url}/v71"

    assert adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER).message["status"] == "authorised"
    assert adyen.checkout.payments_api.sessions(SESSION).status_code == 201


# Authentication -------------------------------------------------------------


def test_stripe_without_api_key_is_401(stub: PSPStub) -> None:
    client = stripe.StripeClient("", base_addresses={"api": stub.url}, max_network_retries=0)

    with pytest.raises(stripe.AuthenticationError) as caught:
        client.v1.payouts.create(params=PAYOUT)

    assert caught.value.http_status == 401
    assert stub.submissions(stub.requests[0].idempotency_key or "") == 0


def test_adyen_without_api_key_header_is_401(stub: PSPStub) -> None:
    client = Adyen.Adyen(username="ws_user", password="secret", http_timeout=CLIENT_TIMEOUT)
    client.checkout.payments_api.baseUrl = stub.adyen_checkout_url

    with pytest.raises(Adyen.AdyenAPIAuthenticationError):
        client.checkout.payments_api.sessions(SESSION)


def test_raw_request_without_credentials_is_401(stub: PSPStub) -> None:
    response = requests.post(f"{stub.url}/adyen/btl/v4/transfers", json=ADYEN_TRANSFER, timeout=5)

    assert response.status_code == 401
    assert response.json()["errorType"] == "security"
    assert stub.objects() == []


def test_unknown_path_is_404(stub: PSPStub) -> None:
    response = requests.post(f"{stub.url}/v1/charges", headers={"Authorization": "Bearer x"}, timeout=5)

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


# Idempotency ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_same_key_replays_without_a_second_submission(
    stub: PSPStub, stripe_client: stripe.StripeClient, adyen: Adyen.Adyen, kind: str
) -> None:
    create = _creates(stripe_client, adyen)[kind]

    first, second = create("key-1"), create("key-1")

    assert first == second
    assert stub.submissions("key-1") == 1
    assert len(stub.objects(kind)) == 1
    assert [record.replayed for record in stub.requests] == [False, True]


def test_stripe_replay_is_marked(stripe_client: stripe.StripeClient) -> None:
    stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})
    replayed = stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})

    assert replayed.last_response is not None and replayed.last_response.headers["Idempotent-Replayed"] == "true"


def test_keys_are_scoped_per_endpoint(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "shared"})
    stripe_client.v1.transfers.create(params=STRIPE_TRANSFER, options={"idempotency_key": "shared"})

    assert stub.submissions("shared") == 2


def test_stripe_key_reused_with_other_params_is_idempotency_error(
    stub: PSPStub, stripe_client: stripe.StripeClient
) -> None:
    stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})

    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.payouts.create(params={**PAYOUT, "amount": 999}, options={"idempotency_key": "k"})
    assert stub.submissions("k") == 1


def test_adyen_key_reused_with_other_body_is_422(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER, idempotency_key="k")

    with pytest.raises(Adyen.AdyenAPIUnprocessableEntity):
        adyen.transfers.transfers_api.transfer_funds({**ADYEN_TRANSFER, "reference": "other"}, idempotency_key="k")
    assert stub.submissions("k") == 1


# Failure modes --------------------------------------------------------------


STRIPE_FAILURES = [
    ("stripe_payment_intent", "fail", stripe.APIError, 500),
    ("stripe_payout", "fail", stripe.APIError, 500),
    ("stripe_transfer", "fail", stripe.APIError, 500),
    ("stripe_payment_intent", "decline", stripe.CardError, 402),
    ("stripe_payout", "decline", stripe.InvalidRequestError, 400),
    ("stripe_transfer", "decline", stripe.InvalidRequestError, 400),
]


@pytest.mark.parametrize(("kind", "mode", "error", "status"), STRIPE_FAILURES)
def test_stripe_failure_modes(
    stub: PSPStub,
    stripe_client: stripe.StripeClient,
    adyen: Adyen.Adyen,
    kind: str,
    mode: str,
    error: type[stripe.StripeError],
    status: int,
) -> None:
    stub.set_mode(kind, mode, times=1)

    with pytest.raises(error) as caught:
        _creates(stripe_client, adyen)[kind]("key")

    assert caught.value.http_status == status
    assert stub.submissions("key") == (0 if mode == "fail" else 1)


def test_stripe_card_decline_carries_the_payment_intent(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    stub.set_mode("stripe_payment_intent", "decline")

    with pytest.raises(stripe.CardError) as caught:
        stripe_client.v1.payment_intents.create(params=PAYMENT_INTENT)

    assert caught.value.code == "card_declined"
    json_body = caught.value.json_body
    assert isinstance(json_body, dict)
    intent = json_body["error"]["payment_intent"]
    assert intent["last_payment_error"]["decline_code"] == "generic_decline"
    assert stripe_client.v1.payment_intents.retrieve(intent["id"]).status == "requires_payment_method"


def test_stripe_payout_decline_is_balance_insufficient(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    stub.set_mode("stripe_payout", "decline")

    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.payouts.create(params=PAYOUT)

    assert caught.value.code == "balance_insufficient"


def test_fail_is_transient_so_a_retry_with_the_same_key_executes(
    stub: PSPStub, stripe_client: stripe.StripeClient
) -> None:
    stub.set_mode("stripe_payout", "fail", times=1)

    with pytest.raises(stripe.APIError):
        stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})
    payout = stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})

    assert payout.status == "pending"
    assert stub.submissions("k") == 1


def test_decline_is_stored_and_replayed(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    stub.set_mode("stripe_payout", "decline", times=1)

    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError):
            stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})

    assert stub.submissions("k") == 1
    assert [record.replayed for record in stub.requests] == [False, True]


@pytest.mark.parametrize(
    ("kind", "mode", "error", "status"),
    [
        ("adyen_session", "fail", Adyen.AdyenAPICommunicationError, 500),
        ("adyen_transfer", "fail", Adyen.AdyenAPICommunicationError, 500),
        ("adyen_session", "decline", Adyen.AdyenAPIUnprocessableEntity, 422),
        ("adyen_transfer", "decline", Adyen.AdyenAPIUnprocessableEntity, 422),
    ],
)
def test_adyen_failure_modes(
    stub: PSPStub,
    stripe_client: stripe.StripeClient,
    adyen: Adyen.Adyen,
    kind: str,
    mode: str,
    error: type[Adyen.AdyenError],
    status: int,
) -> None:
    stub.set_mode(kind, mode, times=1)

    with pytest.raises(error) as caught:
        _creates(stripe_client, adyen)[kind]("key")

    assert caught.value.status_code == status
    assert stub.submissions("key") == (0 if mode == "fail" else 1)


def test_adyen_fail_is_marked_transient(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    stub.set_mode("adyen_transfer", "fail")

    with pytest.raises(Adyen.AdyenAPICommunicationError) as caught:
        adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER)

    assert caught.value.headers["Transient-Error"] == "true"


def test_adyen_transfer_decline_returns_the_refused_transfer(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    stub.set_mode("adyen_transfer", "decline")

    with pytest.raises(Adyen.AdyenAPIUnprocessableEntity) as caught:
        adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER)

    refused = caught.value.message["response"]
    assert (refused["status"], refused["reason"], refused["reference"]) == ("refused", "notEnoughBalance", "wd_1")


def test_stripe_timeout_is_ambiguous_and_the_retry_replays(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    stub.set_mode("stripe_payout", "timeout", times=1)

    with pytest.raises(stripe.APIConnectionError):
        stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})
    assert stub.submissions("k") == 1
    assert _eventually(lambda: not _handler_threads()), "the held response outlived the client's hang-up"
    retried = stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})

    assert retried.id == stub.objects("stripe_payout")[0]["id"]
    assert stub.submissions("k") == 1
    assert [(record.mode, record.replayed) for record in stub.requests] == [("timeout", False), (None, True)]


def test_adyen_timeout_is_ambiguous_and_the_retry_replays(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    stub.set_mode("adyen_transfer", "timeout")

    with pytest.raises(requests.Timeout):
        adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER, idempotency_key="k")
    retried = adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER, idempotency_key="k")

    assert retried.message["id"] == stub.objects("adyen_transfer")[0]["id"]
    assert stub.submissions("k") == 1


def test_timeout_delay_shorter_than_the_client_timeout_only_slows_down(
    stub: PSPStub, stripe_client: stripe.StripeClient
) -> None:
    stub.set_mode("stripe_payout", "timeout", delay=0.3)
    started = time.monotonic()

    assert stripe_client.v1.payouts.create(params=PAYOUT).status == "pending"
    assert time.monotonic() - started >= 0.3


def test_modes_count_down_and_specific_kinds_win(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    stub.set_mode("*", "fail", times=2)
    stub.set_mode("stripe_transfer", "ok")

    assert stripe_client.v1.transfers.create(params=STRIPE_TRANSFER).object == "transfer"
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            stripe_client.v1.payouts.create(params=PAYOUT)
    assert stripe_client.v1.payouts.create(params=PAYOUT).status == "pending"


def test_reset_clears_modes_keys_and_records(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})
    stub.set_mode("*", "fail")

    stub.reset()

    assert (stub.requests, stub.objects(), stub.submissions("k")) == ([], [], 0)
    assert stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"}).status == "pending"


@pytest.mark.parametrize(
    ("kind", "mode", "times", "delay"),
    [("paypal", "ok", None, None), ("*", "explode", None, None), ("*", "fail", 0, None), ("*", "timeout", None, -1)],
)
def test_set_mode_rejects_nonsense(stub: PSPStub, kind: str, mode: str, times: int | None, delay: float | None) -> None:
    with pytest.raises(ValueError):
        stub.set_mode(kind, mode, times, delay)


# Webhook signatures ---------------------------------------------------------


def test_stripe_signature_verifies_with_the_sdk() -> None:
    event = stripe_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent", "amount": 2500})
    payload = json.dumps(event)

    header = stripe_signature_header(payload, WEBHOOK_SECRET)

    verified = stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET, tolerance=300)
    assert (verified.id, verified.type) == (event["id"], "payment_intent.succeeded")
    assert event["id"].startswith("evt_") and event["object"] == "event" and event["livemode"] is False


def test_stripe_signature_matches_the_documented_scheme() -> None:
    payload, timestamp = '{"id":"evt_1","object":"event"}', 1_700_000_000
    expected = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()

    assert stripe_signature_header(payload, WEBHOOK_SECRET, timestamp) == f"t={timestamp},v1={expected}"


def test_stripe_signature_rejects_wrong_secret_and_old_timestamp() -> None:
    payload = json.dumps(stripe_event("payout.paid", {"id": "po_1", "object": "payout"}))

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            payload, stripe_signature_header(payload, "whsec_other"), WEBHOOK_SECRET, tolerance=300
        )
    stale = stripe_signature_header(payload, WEBHOOK_SECRET, int(time.time()) - 600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, WEBHOOK_SECRET, tolerance=300)


def test_send_stripe_event(receiver: Receiver) -> None:
    event = stripe_event("payout.failed", {"id": "po_1", "object": "payout", "status": "failed"})

    response = send_stripe_event(receiver.url, event, WEBHOOK_SECRET)

    assert response.status_code == 200
    headers, body = receiver.last
    verified = stripe.Webhook.construct_event(body, headers["stripe-signature"], WEBHOOK_SECRET, tolerance=300)
    assert verified.data.object.status == "failed"


def test_adyen_signer_reproduces_published_vector() -> None:
    # Adyen's published example: item, key and expected hmacSignature from
    # Adyen/adyen-python-api-library, test/test_util.py::test_notification_request_item_hmac
    # (commit 87ae0f7f65541d575c91c8be7f48b9f135cba237; same vector in test/UtilTest.py).
    published = {
        "pspReference": "7914073381342284",
        "merchantReference": "TestPayment-1407325143704",
        "merchantAccountCode": "TestMerchant",
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "AUTHORISATION",
        "success": "true",
        "eventDate": "2019-05-06T17:15:34.121+02:00",
        "operations": ["CANCEL", "CAPTURE", "REFUND"],
        "paymentMethod": "visa",
    }
    expected = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="

    assert adyen_item_signature(published, ADYEN_HMAC_KEY) == expected
    built = adyen_notification_item(
        ADYEN_HMAC_KEY,
        event_code="AUTHORISATION",
        psp_reference="7914073381342284",
        merchant_reference="TestPayment-1407325143704",
        merchant_account="TestMerchant",
        value=1130,
        currency="EUR",
    )
    assert built["additionalData"]["hmacSignature"] == expected


def test_adyen_signer_matches_an_independent_implementation() -> None:
    item = adyen_notification_item(
        ADYEN_HMAC_KEY,
        event_code="REFUND",
        psp_reference="8815000000000001",
        original_reference="7914073381342284",
        merchant_reference="dep_1",
        value=500,
        currency="EUR",
        success=False,
    )
    signing_string = "8815000000000001:7914073381342284:TestMerchant:dep_1:500:EUR:REFUND:false"
    digest = hmac.new(bytes.fromhex(ADYEN_HMAC_KEY), signing_string.encode(), hashlib.sha256).digest()

    assert item["additionalData"]["hmacSignature"] == base64.b64encode(digest).decode()


def test_adyen_payload_signer_reproduces_published_vector() -> None:
    # Adyen/adyen-python-api-library, test/test_util.py::test_is_valid_hmac_payload
    # (commit 87ae0f7f65541d575c91c8be7f48b9f135cba237).
    payload = textwrap.dedent(
        """\
        {
            "type": "merchant.created",
            "environment": "test",
            "createdAt": "01-01-2024",
            "data": {
                "capabilities": {
                    "sendToTransferInstrument": {
                        "requested": true,
                        "requestedLevel": "notApplicable"
                    }
                },
                "companyId": "YOUR_COMPANY_ID",
                "merchantId": "YOUR_MERCHANT_ACCOUNT",
                "status": "PreActive"
            }
        }"""
    )

    assert adyen_payload_signature(payload.encode(), ADYEN_HMAC_KEY) == "NiqA5vsdV5etZMOaR27+GBSG4i6JeP6j1wkCM6t53vA="


def test_send_adyen_notification(receiver: Receiver) -> None:
    item = adyen_notification_item(
        ADYEN_HMAC_KEY,
        event_code="CHARGEBACK",
        psp_reference="9915000000000002",
        original_reference="7914073381342284",
        merchant_reference="dep_1",
        value=2500,
        currency="EUR",
        additional_data={"chargebackReasonCode": "10.4"},
    )

    send_adyen_notification(receiver.url, adyen_notification([item]), basic_auth=("adyen", "pw"))

    headers, body = receiver.last
    assert headers["authorization"] == "Basic " + base64.b64encode(b"adyen:pw").decode()
    notification = json.loads(body)
    assert notification["live"] == "false"
    assert is_valid_hmac_notification(notification, ADYEN_HMAC_KEY)
    notification["notificationItems"][0]["NotificationRequestItem"]["amount"]["value"] = 1
    assert not is_valid_hmac_notification(notification, ADYEN_HMAC_KEY)


def test_send_adyen_transfer_webhook(receiver: Receiver, adyen: Adyen.Adyen) -> None:
    transfer = adyen.transfers.transfers_api.transfer_funds(ADYEN_TRANSFER).message

    send_adyen_transfer_webhook(receiver.url, transfer, "booked", ADYEN_HMAC_KEY)

    headers, body = receiver.last
    assert is_valid_hmac_payload(headers["hmacsignature"], ADYEN_HMAC_KEY, body)
    assert not is_valid_hmac_payload(headers["hmacsignature"], "00" * 32, body)
    webhook = json.loads(body)
    assert webhook["type"] == "balancePlatform.transfer.updated"
    data = webhook["data"]
    assert (data["id"], data["reference"], data["status"]) == (transfer["id"], "wd_1", "booked")


# The custody vector was computed independently with OpenSSL 3.0:
#   printf '%s' '<CUSTODY_BODY>' | openssl dgst -sha256 -hmac 'custody-test-key'
CUSTODY_BODY = b'{"amount":"125.50","asset":"USDC","deposit_id":"dep_0001","status":"confirmed"}'
CUSTODY_SIGNATURE = "49d873d61e2e668f2a63f8f70e88dcd8f88d140c51e7ef68d823e01848724705"


def test_custody_signature_known_vector() -> None:
    assert custody_signature(CUSTODY_BODY, CUSTODY_KEY) == CUSTODY_SIGNATURE


def test_custody_signature_agrees_with_openssl() -> None:
    assert shutil.which("openssl"), "this test compares with the openssl command line, which is not installed"
    body = b'{"deposit_id":"dep_0002","amount":"1"}'
    output = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", CUSTODY_KEY], input=body, capture_output=True, check=True
    ).stdout.decode()

    assert output.strip().split("= ")[-1] == custody_signature(body, CUSTODY_KEY)


def test_send_custody_deposit(receiver: Receiver) -> None:
    payload = {"amount": "125.50", "asset": "USDC", "deposit_id": "dep_0001", "status": "confirmed"}

    send_custody_deposit(receiver.url, payload, CUSTODY_KEY)

    headers, body = receiver.last
    assert body == CUSTODY_BODY
    assert headers["x-webhook-signature"] == CUSTODY_SIGNATURE


# HTTP control endpoints -----------------------------------------------------


def test_control_mode_requests_submissions_and_reset(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    mode: JSON = {"kind": "stripe_payout", "mode": "fail", "times": 1, "delay": None}
    assert requests.post(f"{stub.url}/_stub/mode", json=mode, timeout=5).json() == {"ok": True}

    with pytest.raises(stripe.APIError):
        stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})
    stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})

    records = requests.get(f"{stub.url}/_stub/requests", timeout=5).json()["requests"]
    assert [(r["kind"], r["mode"], r["status"]) for r in records] == [
        ("stripe_payout", "fail", 500),
        ("stripe_payout", "ok", 200),
    ]
    assert records[0]["headers"]["idempotency-key"] == "k"
    counted = requests.get(f"{stub.url}/_stub/submissions", params={"key": "k"}, timeout=5).json()
    assert counted == {"idempotency_key": "k", "submissions": 1}
    assert requests.post(f"{stub.url}/_stub/reset", timeout=5).status_code == 200
    assert stub.requests == []


def test_control_calls_counts_every_post_per_key_and_the_most_in_flight_at_once(
    stub: PSPStub, stripe_client: stripe.StripeClient
) -> None:
    """`GET /_stub/call-stats`: HTTP calls per key (failures and replays count), executions, calls held at once."""
    stub.set_mode("stripe_payout", "fail", times=1)
    with pytest.raises(stripe.APIError):
        stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})
    stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})
    stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "k"})  # a replay
    stub.set_mode("stripe_payout", "timeout", delay=0.5)
    both = [
        threading.Thread(
            target=lambda: stripe_client.v1.payouts.create(params=PAYOUT, options={"idempotency_key": "overlap"})
        )
        for _ in range(2)
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(10)

    calls = requests.get(f"{stub.url}/_stub/call-stats", timeout=5).json()["calls"]

    assert calls["k"] == {"calls": 3, "executed": 1, "in_flight": 0, "max_in_flight": 1}
    assert calls["overlap"]["calls"] == 2 and calls["overlap"]["executed"] == 1
    assert calls["overlap"]["max_in_flight"] == 2  # the second arrived while the first was held
    assert calls["overlap"]["in_flight"] == 0
    assert stub.call_stats() == calls


def test_control_calls_ends_a_call_when_its_client_hangs_up(stub: PSPStub) -> None:
    stub.set_mode("stripe_payout", "timeout", delay=30)
    with pytest.raises(requests.Timeout):
        requests.post(
            f"{stub.url}/v1/payouts",
            data={"amount": "100", "currency": "usd"},
            headers={"Authorization": f"Bearer {STRIPE_KEY}", "Idempotency-Key": "held"},
            timeout=0.5,
        )
    assert _eventually(lambda: stub.call_stats()["held"]["in_flight"] == 0), "a hung-up call still counted in flight"
    assert stub.call_stats()["held"]["calls"] == 1


def test_control_rejects_bad_mode(stub: PSPStub) -> None:
    response = requests.post(f"{stub.url}/_stub/mode", json={"kind": "*", "mode": "explode"}, timeout=5)

    assert response.status_code == 400
    assert "explode" in response.json()["error"]


def test_control_sends_signed_webhooks(stub: PSPStub, receiver: Receiver) -> None:
    bodies: dict[str, JSON] = {
        "stripe": {"secret": WEBHOOK_SECRET, "type": "payout.paid", "object": {"id": "po_1", "object": "payout"}},
        "adyen": {
            "hmac_key": ADYEN_HMAC_KEY,
            "items": [
                {
                    "event_code": "AUTHORISATION",
                    "psp_reference": "P1",
                    "merchant_reference": "dep_1",
                    "value": 100,
                    "currency": "EUR",
                }
            ],
        },
        "adyen-transfer": {
            "hmac_key": ADYEN_HMAC_KEY,
            "status": "failed",
            "transfer": {"id": "T1", "reference": "wd_1", "amount": {"value": 100, "currency": "EUR"}},
        },
        "custody": {"key": CUSTODY_KEY, "payload": {"deposit_id": "dep_2", "amount": "1"}},
    }
    for name, body in bodies.items():
        reply = requests.post(f"{stub.url}/_stub/webhooks/{name}", json={**body, "target_url": receiver.url}, timeout=5)
        assert (reply.status_code, reply.json()["status_code"], reply.json()["body"]) == (200, 200, "[accepted]")

    (
        (stripe_headers, stripe_body),
        (_, adyen_body),
        (transfer_headers, transfer_body),
        (custody_headers, custody_body),
    ) = receiver.received
    stripe.Webhook.construct_event(stripe_body, stripe_headers["stripe-signature"], WEBHOOK_SECRET, tolerance=300)
    assert is_valid_hmac_notification(json.loads(adyen_body), ADYEN_HMAC_KEY)
    assert is_valid_hmac_payload(transfer_headers["hmacsignature"], ADYEN_HMAC_KEY, transfer_body)
    assert json.loads(transfer_body)["data"]["status"] == "failed"
    assert custody_headers["x-webhook-signature"] == custody_signature(custody_body, CUSTODY_KEY)


def test_control_webhook_to_unreachable_target_is_502(stub: PSPStub) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    body: JSON = {"target_url": f"http://127.0.0.1:{closed_port}/hooks", "key": "k", "payload": {}}

    assert requests.post(f"{stub.url}/_stub/webhooks/custody", json=body, timeout=5).status_code == 502


def test_control_webhooks_default_to_the_webhook_target(receiver: Receiver) -> None:
    body: JSON = {"path": "/hooks", "key": CUSTODY_KEY, "payload": {"deposit_id": "dep_3"}}
    with PSPStub(webhook_target=receiver.url.removesuffix("/hooks")) as stub:
        reply = requests.post(f"{stub.url}/_stub/webhooks/custody", json=body, timeout=5)

    assert reply.json()["status_code"] == 200
    assert json.loads(receiver.last[1]) == {"deposit_id": "dep_3"}


def test_control_webhook_without_any_target_is_400(stub: PSPStub) -> None:
    body: JSON = {"key": CUSTODY_KEY, "payload": {}}

    assert requests.post(f"{stub.url}/_stub/webhooks/custody", json=body, timeout=5).status_code == 400


# Lifecycle ------------------------------------------------------------------


def test_stop_wakes_held_responses_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    stub = PSPStub(timeout_delay=60).start()
    stub.set_mode("*", "timeout")
    patient = socket.create_connection((stub.host, stub.port))  # a client that never gives up
    body = b"amount=100&currency=eur"
    patient.sendall(
        b"POST /v1/payouts HTTP/1.1\r\nHost: stub\r\nAuthorization: Bearer x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert _eventually(lambda: len(stub.requests) == 1)
    time.sleep(0.2)
    assert len(_handler_threads()) == 1, "the response should still be held"

    started = time.monotonic()
    stub.stop()
    patient.close()

    assert time.monotonic() - started < 2
    assert set(threading.enumerate()) <= before
    with pytest.raises(RuntimeError):
        stub.url  # noqa: B018


def test_module_runs_in_the_foreground_and_prints_its_url() -> None:
    command = [sys.executable, "-m", "webhooks.stub", "--port", "0", "--webhook-target", "http://127.0.0.1:8000"]
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            assert url.startswith("http://127.0.0.1:")
            payout = {"amount": 1, "currency": "eur"}
            response = requests.post(f"{url}/v1/payouts", data=payout, headers={"Authorization": "Bearer x"}, timeout=5)
            assert response.json()["status"] == "pending"
        finally:
            process.terminate()
        assert process.wait(timeout=5) == 0


def test_demo_prices_agree_across_sources_and_change_by_day() -> None:
    import requests

    from webhooks.stub import PSPStub

    with PSPStub() as stub:
        a = requests.get(f"{stub.url}/_stub/prices/a/NASDAQ/2025-11-26", timeout=5).json()
        b = requests.get(f"{stub.url}/_stub/prices/b/NASDAQ/2025-11-26", timeout=5).json()
        c = requests.get(f"{stub.url}/_stub/prices/a/NASDAQ/2025-11-28", timeout=5).json()
        bad = requests.get(f"{stub.url}/_stub/prices/a/NASDAQ/not-a-date", timeout=5)
    assert a == b and a != c
    assert bad.status_code == 400


def test_status_calls_answer_through_both_sdks(
    stub: PSPStub, stripe_client: stripe.StripeClient, adyen: Adyen.Adyen
) -> None:
    """Stripe retrieve/list payouts and Adyen get transfer(s) by id or reference; a control call sets the status."""
    payout = stripe_client.v1.payouts.create(
        params={**PAYOUT, "metadata": {"idempotency_key": "wd-1-1"}}, options={"idempotency_key": "wd-1-1"}
    )
    assert stripe_client.v1.payouts.retrieve(payout.id).status == "pending"
    reply = requests.post(f"{stub.url}/_stub/objects/{payout.id}", json={"status": "paid"}, timeout=CLIENT_TIMEOUT)
    assert reply.status_code == 200 and reply.json()["status"] == "paid"
    assert stripe_client.v1.payouts.retrieve(payout.id).status == "paid"
    listed = stripe_client.v1.payouts.list(params={"limit": 10})
    metadata = listed.data[0].metadata
    assert [p.id for p in listed.data] == [payout.id] and metadata is not None
    assert metadata.to_dict() == {"idempotency_key": "wd-1-1"}

    api = adyen.transfers.transfers_api
    created = api.transfer_funds(
        {
            "amount": {"currency": "EUR", "value": 100},
            "balanceAccountId": "BA1",
            "category": "bank",
            "counterparty": {"transferInstrumentId": "SE1234567890ABC1234567890"},
            "reference": "wd-2-1",
        },
        idempotency_key="wd-2-1",
    ).message
    stub.set_object_status(created["id"], "booked")
    assert api.get_transfer(created["id"]).message["status"] == "booked"
    found = api.get_all_transfers(query_parameters={"reference": "wd-2-1"}).message["data"]
    assert [t["id"] for t in found] == [created["id"]]
    assert api.get_all_transfers(query_parameters={"reference": "wd-9-9"}).message["data"] == []
    assert (
        requests.post(f"{stub.url}/_stub/objects/nope", json={"status": "paid"}, timeout=CLIENT_TIMEOUT).status_code
        == 400
    )


# Stripe Connect and Adyen counterparties: validated like the PSPs do ---------------------------


def test_a_transfer_to_an_unknown_or_missing_destination_is_a_stripe_400(
    stub: PSPStub, stripe_client: stripe.StripeClient
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        stripe_client.v1.transfers.create(params={**STRIPE_TRANSFER, "destination": "acct_1NotAnAccountOfOurs"})
    assert (unknown.value.http_status, unknown.value.code, unknown.value.param) == (
        400,
        "resource_missing",
        "destination",
    )
    assert "No such destination: 'acct_1NotAnAccountOfOurs'" in str(unknown.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe_client.v1.transfers.create(params={"amount": 1000, "currency": "eur"})  # type: ignore[typeddict-item]
    assert (missing.value.http_status, missing.value.code, missing.value.param) == (
        400,
        "parameter_missing",
        "destination",
    )
    assert stub.objects("stripe_transfer") == []


def test_a_connected_accounts_payout_is_paid_from_what_transfers_put_there(
    stub: PSPStub, stripe_client: stripe.StripeClient
) -> None:
    """Transfer to the account, then a payout on it (Stripe-Account): its balance pays it, once."""
    on_account: Any = {"stripe_account": STUB_CONNECTED_ACCOUNT}
    with pytest.raises(stripe.InvalidRequestError) as empty:  # nothing transferred there yet
        stripe_client.v1.payouts.create(params=PAYOUT, options={**on_account, "idempotency_key": "po-0"})
    assert (empty.value.http_status, empty.value.code) == (400, "balance_insufficient")

    transfer = stripe_client.v1.transfers.create(params=STRIPE_TRANSFER, options={"idempotency_key": "tr-1"})
    assert stub.connected_balance(STUB_CONNECTED_ACCOUNT, "eur") == 1000
    payout = stripe_client.v1.payouts.create(params=PAYOUT, options={**on_account, "idempotency_key": "po-1"})
    assert stub.owner(payout.id) == STUB_CONNECTED_ACCOUNT and stub.owner(transfer.id) is None
    assert stub.connected_balance(STUB_CONNECTED_ACCOUNT, "eur") == 0
    replayed = stripe_client.v1.payouts.create(params=PAYOUT, options={**on_account, "idempotency_key": "po-1"})
    assert replayed.id == payout.id and stub.connected_balance(STUB_CONNECTED_ACCOUNT, "eur") == 0

    # Found on the connected account only, as on Stripe; the platform's own payouts list does not hold it.
    assert stripe_client.v1.payouts.retrieve(payout.id, options=on_account).id == payout.id
    with pytest.raises(stripe.InvalidRequestError) as elsewhere:
        stripe_client.v1.payouts.retrieve(payout.id)
    assert elsewhere.value.http_status == 404
    assert [p.id for p in stripe_client.v1.payouts.list(options=on_account).data] == [payout.id]
    assert stripe_client.v1.payouts.list().data == []
    listed = stripe_client.v1.transfers.list(params={"destination": STUB_CONNECTED_ACCOUNT})
    assert [t.id for t in listed.data] == [transfer.id]


def test_an_unknown_stripe_account_header_is_refused(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.PermissionError) as refused:
        stripe_client.v1.payouts.create(params=PAYOUT, options={"stripe_account": "acct_1NotAnAccountOfOurs"})
    assert refused.value.http_status == 403
    assert "does not have access to account 'acct_1NotAnAccountOfOurs'" in str(refused.value.user_message)
    body: Any = refused.value.json_body
    assert body["error"]["code"] == "account_invalid"
    stub.add_connected_account("acct_1NotAnAccountOfOurs")  # once connected, it is reachable
    reply = requests.post(
        f"{stub.url}/_stub/connected_accounts", json={"account": "acct_1AddedOverHttp000"}, timeout=CLIENT_TIMEOUT
    )
    assert reply.status_code == 200
    stripe_client.v1.transfers.create(params={**STRIPE_TRANSFER, "destination": "acct_1AddedOverHttp000"})
    assert stub.objects("stripe_payout") == []


@pytest.mark.parametrize(
    ("counterparty", "detail"),
    [
        (None, "'counterparty' is required"),
        ({}, "'counterparty' is required"),
        ({"transferInstrumentId": ""}, "'counterparty.transferInstrumentId' is empty"),
        ({"transferInstrumentId": "SE1", "balanceAccountId": "BA1"}, "exactly one of"),
        ({"bankAccount": {"accountIdentification": {"type": "iban", "iban": "NL91"}}}, "fullName"),
        ({"bankAccount": {"accountHolder": {"fullName": "A B"}}}, "accountIdentification.type"),
        ({"bankAccount": {"accountHolder": {"fullName": "A B"}, "accountIdentification": {"type": "iban"}}}, "iban"),
    ],
)
def test_an_adyen_transfer_without_a_real_counterparty_is_refused(
    stub: PSPStub, adyen: Adyen.Adyen, counterparty: Any, detail: str
) -> None:
    body = {name: value for name, value in ADYEN_TRANSFER.items() if name != "counterparty"}
    if counterparty is not None:
        body["counterparty"] = counterparty
    with pytest.raises(Adyen.AdyenAPIUnprocessableEntity) as refused:
        adyen.transfers.transfers_api.transfer_funds(body, idempotency_key="bad-counterparty")
    assert refused.value.status_code == 422
    assert detail in str(refused.value.raw_response)
    assert stub.objects("adyen_transfer") == [] and stub.submissions("bad-counterparty") == 0


def test_an_adyen_transfer_to_a_third_partys_bank_account_is_taken(stub: PSPStub, adyen: Adyen.Adyen) -> None:
    counterparty = {
        "bankAccount": {
            "accountHolder": {"fullName": "Jane Doe"},
            "accountIdentification": {"type": "iban", "iban": "NL91ABNA0417164300"},
        }
    }
    result = adyen.transfers.transfers_api.transfer_funds(
        {**ADYEN_TRANSFER, "counterparty": counterparty}, idempotency_key="iban-1"
    )
    assert result.message["counterparty"] == counterparty and result.message["status"] == "authorised"


# Test mode: payouts settle by themselves only with a payout delay -------------------------------------


def test_the_module_settles_payouts_after_its_payout_delay() -> None:
    """`--payout-delay` (here from STUB_PAYOUT_DELAY_S): a payout is pending, then paid; with no webhook target
    the stub says it could send nothing. A bad delay is refused at start-up."""
    import os

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "STUB_PAYOUT_DELAY_S": "0.2"}
    command = [sys.executable, "-m", "webhooks.stub", "--port", "0"]
    with subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True) as process:  # noqa: S603
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            auth = {"Authorization": "Bearer x"}
            created = requests.post(f"{url}/v1/payouts", data={"amount": 1, "currency": "eur"}, headers=auth, timeout=5)
            assert created.json()["status"] == "pending"
            assert _eventually(
                lambda: (
                    requests.get(f"{url}/v1/payouts/{created.json()['id']}", headers=auth, timeout=5).json()["status"]
                    == "paid"
                )
            )
            (delivery,) = requests.get(f"{url}/_stub/deliveries", timeout=5).json()["deliveries"]
            assert (delivery["event"], delivery["status_code"], delivery["error"]) == (
                "payout.paid",
                None,
                "no webhook target",
            )
        finally:
            process.terminate()
        assert process.wait(timeout=5) == 0
    refused = subprocess.run(  # noqa: S603
        [*command, "--payout-delay", "-1"], cwd=root, capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 2 and "must be 0 or more seconds" in refused.stderr


def test_payouts_stay_as_created_without_a_payout_delay(stub: PSPStub, stripe_client: stripe.StripeClient) -> None:
    payout = stripe_client.v1.payouts.create(params={"amount": 100, "currency": "eur"})
    time.sleep(0.5)
    assert stripe_client.v1.payouts.retrieve(payout.id).status == "pending"
    assert stub.deliveries() == []


def test_reset_and_stop_cancel_the_payouts_waiting_for_their_delay() -> None:
    before = set(threading.enumerate())
    stub = PSPStub(payout_delay=0.3).start()
    client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stub.url})
    first = client.v1.payouts.create(params={"amount": 100, "currency": "eur"})
    stub.reset()  # forgets the first
    second = client.v1.payouts.create(params={"amount": 100, "currency": "eur"})
    stub.stop()  # before the second's delay is over
    time.sleep(0.5)
    assert stub.deliveries() == [] and first.id != second.id
    assert [(obj["id"], obj["status"]) for obj in stub.objects()] == [(second.id, "pending")]
    assert set(threading.enumerate()) <= before
