"""A local, threaded HTTP server that speaks just enough Stripe and Adyen for tests.

Point the real SDKs at it::

    with PSPStub() as stub:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": stub.url})
        adyen = Adyen.Adyen(xapikey="key")
        adyen.checkout.payments_api.baseUrl = stub.adyen_checkout_url
        adyen.transfers.transfers_api.baseUrl = stub.adyen_transfers_url

Creates honour ``Idempotency-Key`` the way the PSPs do: the first outcome of a key
on an endpoint is stored and replayed, never executed twice. Failure modes set with
:meth:`PSPStub.set_mode` apply to creates that are not replays:

* ``ok``: the normal response.
* ``fail``: HTTP 500, provider-shaped; nothing executes or is stored, so a retry
  with the same key executes normally (a transient error).
* ``decline``: executed and stored. Stripe payment intents: 402 ``card_error``.
  Stripe payouts/transfers: 400 ``balance_insufficient``. Adyen sessions: 422.
  Adyen transfers: 422 whose ``response`` is the transfer with status ``refused``.
* ``timeout``: executed and stored at once, but the response is held back until
  the client gives up and hangs up (its own timeout), or for at most ``delay``
  seconds (default 30). The client cannot know whether the create happened; a
  retry with the same key replays it.

Started with a ``webhook_target``, it also finishes what a user starts, as the PSPs do in test mode
(:mod:`webhooks.stub.lifecycle`): the pay page ``/_stub/pay/<psp_id>`` pays or declines a payment and sends its
webhook; with a ``payout_delay`` (off by default, so tests drive payout statuses by hand) payouts become paid,
or fail for the test destinations, and their webhook follows.
"""

import copy
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from . import control
from .adyen_api import AdyenAPI
from .lifecycle import DEFAULT_ADYEN_HMAC_KEY, DEFAULT_STRIPE_WEBHOOK_SECRET, PAYOUT_KINDS, Lifecycle
from .routing import Incoming, Provider, find_route
from .state import DEFAULT_TIMEOUT_DELAY, JSON, Created, RecordedRequest, Reply, StubState
from .stripe_api import StripeAPI, account_invalid, balance_insufficient, no_such_destination

CONTROL_PREFIX = "/_stub/"
STRIPE = StripeAPI()
ADYEN = AdyenAPI()


def provider_for(request: Incoming) -> Provider:
    """Adyen's SDK sends JSON and its ``X-API-Key`` (also on GET); Stripe's sends form data (or nothing, for GET)."""
    return ADYEN if request.content_type == "application/json" or "x-api-key" in request.headers else STRIPE


class PSPStub:
    """Stripe and Adyen stand-in on ``127.0.0.1``; see the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout_delay: float = DEFAULT_TIMEOUT_DELAY,
        webhook_target: str | None = None,
        verbose: bool = False,
        payout_delay: float | None = None,
        stripe_webhook_secret: str = DEFAULT_STRIPE_WEBHOOK_SECRET,
        adyen_hmac_key: str = DEFAULT_ADYEN_HMAC_KEY,
    ) -> None:
        if payout_delay is not None and payout_delay < 0:
            raise ValueError(f"payout_delay must be None (off) or at least 0 seconds, not {payout_delay!r}.")
        self.host = host
        self.port = port
        self.timeout_delay = timeout_delay
        self.webhook_target = webhook_target
        self.verbose = verbose
        # Seconds after which a created payout is settled and its webhook sent; None: payouts stay as created.
        self.payout_delay = payout_delay
        self.stripe_webhook_secret = stripe_webhook_secret
        self.adyen_hmac_key = adyen_hmac_key
        self._state = StubState()
        self.lifecycle = Lifecycle(self)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle --------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; ``port=0`` picks a free port."""
        if self._server is not None:
            raise RuntimeError("PSPStub is already running.")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"psp-stub-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake held-back responses and join every server thread."""
        if self._server is None or self._thread is None:
            return
        self._server.stopping.set()
        self.lifecycle.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """Base URL; use it as the Stripe ``api`` base address."""
        if not self.running:
            raise RuntimeError("PSPStub is not running; call start() or use it as a context manager.")
        return f"http://{self.host}:{self.port}"

    @property
    def adyen_checkout_url(self) -> str:
        """A ``baseUrl`` for ``adyen.checkout.payments_api`` (any prefix would do)."""
        return f"{self.url}/adyen/checkout/v72"

    @property
    def adyen_transfers_url(self) -> str:
        """A ``baseUrl`` for ``adyen.transfers.transfers_api`` (any prefix would do)."""
        return f"{self.url}/adyen/btl/v4"

    # Test API ---------------------------------------------------------------

    def set_mode(self, kind: str, mode: str, times: int | None = None, delay: float | None = None) -> None:
        """Make the next ``times`` creates of ``kind`` (or ``"*"``) behave as ``mode``; ``None`` = until reset."""
        self._state.set_mode(kind, mode, times, delay)

    def reset(self) -> None:
        """Forget modes, objects, idempotency keys, recorded requests, settled payments and deliveries."""
        self.lifecycle.reset()
        self._state.reset()

    def deliveries(self) -> list[JSON]:
        """The webhooks the stub sent by itself (payments paid or declined, payouts finished), oldest first."""
        return self.lifecycle.deliveries()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every PSP API request received so far, oldest first (control calls excluded)."""
        return self._state.requests()

    def submissions(self, idempotency_key: str) -> int:
        """How many times a create with this key was actually executed (replays excluded)."""
        return self._state.submissions(idempotency_key)

    def calls(self, idempotency_key: str | None = None, path: str | None = None) -> int:
        """How many HTTP requests arrived with this idempotency key and/or on this path prefix (replays included)."""
        return self._state.calls(idempotency_key, path)

    def call_stats(self) -> dict[str, JSON]:
        """Per idempotency key: ``calls`` (HTTP POSTs received, replays and failures included), ``executed``,
        ``in_flight`` (received, not yet answered nor hung up) and ``max_in_flight`` (most at once)."""
        return self._state.call_stats()

    def objects(self, kind: str | None = None) -> list[JSON]:
        """Objects created so far (payment intents, payouts, sessions, transfers...)."""
        return self._state.objects(kind)

    def add_connected_account(self, account: str) -> None:
        """Let Stripe Transfers and ``Stripe-Account`` requests reach this connected account (``acct_...``)."""
        self._state.add_account(account)

    def connected_balance(self, account: str, currency: str) -> int:
        """What a connected account holds in ``currency`` (lower case), in minor units."""
        return self._state.balance(account, currency.lower())

    def reverse_transfer(self, transfer_id: str) -> JSON:
        """Reverse a Stripe transfer in full: its money leaves the connected account again."""
        return self._state.reverse_transfer(transfer_id)

    def owner(self, object_id: str) -> str | None:
        """The connected account an object was created on (``Stripe-Account``), None for the platform."""
        return self._state.owner(object_id)

    def set_object_status(self, object_id: str, status: str) -> JSON:
        """Give a created object a new ``status`` (e.g. a payout now ``paid``); what status calls then return."""
        return self._state.set_object_status(object_id, status)

    # Request handling -------------------------------------------------------

    def dispatch(self, request: Incoming) -> Reply:
        """Answer one request; called by the HTTP handler thread."""
        if request.path.startswith(CONTROL_PREFIX):
            return control.handle(self, request)
        api = provider_for(request)
        body = api.parse_body(request.raw) if request.raw else {}
        record = RecordedRequest(request.method, request.path, request.headers, body, request.idempotency_key)
        reply = self._route(api, request, body, record)
        record.status, record.response = reply.status, reply.body
        self._state.record(record)
        return reply

    def _route(self, api: Provider, request: Incoming, body: Any, record: RecordedRequest) -> Reply:
        found = find_route(api.name, request.method, request.path)
        if found is None:
            return api.not_found(request.method, request.path)
        route, object_id = found
        record.kind = route.kind
        if not api.authorized(request.headers):
            return api.unauthorized()
        # Stripe Connect: `Stripe-Account` scopes the request to that connected account (None: the platform).
        account = request.headers.get("stripe-account") if api.name == "stripe" else None
        if account is not None and not self._state.has_account(account):
            return account_invalid(account)
        owner: str | None | bool = account if api.name == "stripe" else True
        if route.action == "list":
            return api.listed(self._state.objects(route.kind, owner=owner), request.query)
        if object_id is not None:
            obj = self._state.find_object(route.kind, object_id, owner=owner)
            return api.found(obj) if obj is not None else api.missing(route.kind, object_id)
        params = copy.deepcopy(body) if isinstance(body, dict) else {}
        return api.invalid(route.kind, params) or self._create(api, route.kind, params, record, account)

    def _create(
        self, api: Provider, kind: str, params: JSON, record: RecordedRequest, account: str | None = None
    ) -> Reply:
        key = record.idempotency_key
        with self._state.lock:
            stored = self._state.outcome(kind, key) if key else None
            if stored is None or key is None:
                return self._execute(api, kind, params, record, account)
        record.replayed = stored.params == params
        return api.replay(stored.reply) if record.replayed else api.key_reused(key)

    def _execute(
        self, api: Provider, kind: str, params: JSON, record: RecordedRequest, account: str | None = None
    ) -> Reply:
        rule = self._state.take_mode(kind)
        record.mode = rule.mode
        if rule.mode == "fail":
            return api.server_error(kind)
        if rule.mode == "decline":
            created = api.decline(kind, params)
        else:
            created = self._connect_money(kind, params, account) or api.create(kind, params)
        if created.obj is not None and kind == "stripe_transfer":
            self._state.credit(str(params["destination"]), str(params["currency"]).lower(), int(params["amount"]))
        self._state.commit(kind, record.idempotency_key, params, created, owner=account)
        if created.obj is not None and kind in PAYOUT_KINDS and rule.mode != "decline":
            self.lifecycle.payout_created(kind, str(created.obj["id"]), account)
        if rule.mode != "timeout":
            return created.reply
        delay = self.timeout_delay if rule.delay is None else rule.delay
        return Reply(created.reply.status, created.reply.body, created.reply.headers, delay)

    def _connect_money(self, kind: str, params: JSON, account: str | None) -> Created | None:
        """Stripe Connect refusals (stored like any outcome): an unknown Transfer destination, or a payout
        on a connected account that holds too little; None when the create may go ahead."""
        if kind == "stripe_transfer" and not self._state.has_account(str(params["destination"])):
            return Created(no_such_destination(str(params["destination"])))
        if kind == "stripe_payout" and account is not None:
            if not self._state.debit(account, str(params["currency"]).lower(), int(params["amount"])):
                return balance_insufficient(kind)
        return None


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, lets the stub answer it, writes the reply."""

    server: "_Server"
    timeout = 10  # a client that connects and sends nothing cannot pin a thread forever

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        request = self._read()
        key = request.idempotency_key if request.method == "POST" else None
        tracked = bool(key) and not request.path.startswith(CONTROL_PREFIX)
        state = self.server.stub._state
        if tracked:
            state.call_started(str(key))
        try:
            reply = self.server.stub.dispatch(request)
            if not reply.delay or self._client_waits(reply.delay):
                self._write(reply)
        finally:
            if tracked:
                state.call_finished(str(key))

    def _client_waits(self, seconds: float) -> bool:
        """Hold the reply up to ``seconds``; False once the client hangs up or the stub stops."""
        deadline = time.monotonic() + seconds
        while not self.server.stopping.is_set() and (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            if readable:
                return self._still_connected()
        return not self.server.stopping.is_set()

    def _still_connected(self) -> bool:
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK))
        except OSError:
            return False

    def _read(self) -> Incoming:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        return Incoming(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            raw=self.rfile.read(length) if length else b"",
        )

    def _write(self, reply: Reply) -> None:
        if reply.html is not None:
            payload, content_type = reply.html.encode("utf-8"), "text/html; charset=utf-8"
        else:
            payload, content_type = json.dumps(reply.body).encode("utf-8"), "application/json"
        try:
            self.send_response(reply.status)
            for name, value in {**reply.headers, "Content-Type": content_type}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout mode's whole point)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.stub.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    """Joins its handler threads on close, so nothing outlives :meth:`PSPStub.stop`."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], stub: PSPStub) -> None:
        self.stub = stub
        self.stopping = threading.Event()
        super().__init__(address, _Handler)
