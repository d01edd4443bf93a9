"""The local PSP settles payouts by itself (docs/ops/local_psp.md): with a payout delay, a submitted payout
becomes paid at the stub and the stub sends the payout webhook to the running back office (live_server); the
test destinations fail or stay pending. Reconciliation then reads the status the webhook announced.

And the issue's must-show: `reconcile_payouts` run from a fresh shell under the development settings reaches
the stub, and never a real PSP host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from ops.tests.processes import django_env
from payouts.models import Withdrawal
from payouts.providers import PayoutStatus, get_provider
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request
from webhooks.stub import (
    ADYEN_PAYOUT_WEBHOOK_PATH,
    STRIPE_PAYOUT_WEBHOOK_PATH,
    STUB_CONNECTED_ACCOUNT,
    STUB_FAILING_ACCOUNT,
    STUB_FAILING_INSTRUMENT,
    STUB_PENDING_ACCOUNT,
    STUB_PENDING_INSTRUMENT,
    PSPStub,
)

from .helpers import balances

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
AMOUNT_U = 25_000_000
DELAY_S = 0.3
KIND = {"adyen": "adyen_transfer", "stripe": "stripe_payout"}
PAID = {"adyen": "booked", "stripe": "paid"}
DESTINATION: dict[tuple[str, str], dict[str, Any]] = {
    ("stripe", "paid"): {"connected_account": STUB_CONNECTED_ACCOUNT},
    ("stripe", "failed"): {"connected_account": STUB_FAILING_ACCOUNT},
    ("stripe", "pending"): {"connected_account": STUB_PENDING_ACCOUNT},
    ("adyen", "paid"): {"transfer_instrument_id": "SE322KH223222F5GXZFNM3BGP"},
    ("adyen", "iban"): {"bank_account": {"holder_name": "Jane Doe", "iban": "NL91ABNA0417164300"}},
    ("adyen", "failed"): {"transfer_instrument_id": STUB_FAILING_INSTRUMENT},
    ("adyen", "pending"): {"transfer_instrument_id": STUB_PENDING_INSTRUMENT},
}


@pytest.fixture
def local_psp(settings: Any, live_server: Any) -> Iterator[PSPStub]:
    """The stub as `make run` starts it (a payout delay, webhooks to the back office), with a short delay."""
    with PSPStub(
        webhook_target=live_server.url,
        payout_delay=DELAY_S,
        stripe_webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
        adyen_hmac_key=settings.ADYEN_HMAC_KEY,
    ) as psp:
        settings.STRIPE_API_BASE = psp.url
        settings.ADYEN_API_BASE = psp.url
        settings.PAYOUT_PROVIDER_TIMEOUT_S = 5.0
        yield psp


def submitted(player: Any, operator: Any, provider: str, destination: dict[str, Any]) -> Withdrawal:
    """A withdrawal requested, approved and submitted to the PSP (accepted: payout_submitted)."""
    withdrawal = withdrawal_request(
        user=player, amount_u=AMOUNT_U, currency="USDC", provider=provider, destination=destination
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operator)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    return withdrawal


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def state(withdrawal: Withdrawal) -> str:
    return str(Withdrawal.objects.get(pk=withdrawal.pk).state)


@pytest.mark.parametrize(("provider", "destination"), [("stripe", "paid"), ("adyen", "paid"), ("adyen", "iban")])
def test_a_payout_is_paid_after_the_delay_and_its_webhook_marks_it_paid(
    provider: str,
    destination: str,
    local_psp: PSPStub,
    funded_player: Any,
    finance: Any,
    assert_ledger_ok: Any,
) -> None:
    before = balances(funded_player)
    withdrawal = submitted(funded_player, finance, provider, DESTINATION[(provider, destination)])
    (obj,) = local_psp.objects(KIND[provider])
    assert obj["status"] != PAID[provider]  # not before the delay

    wait_for(lambda: state(withdrawal) == Withdrawal.State.PAID, "the payout webhook")

    (delivery,) = local_psp.deliveries()
    path = STRIPE_PAYOUT_WEBHOOK_PATH if provider == "stripe" else ADYEN_PAYOUT_WEBHOOK_PATH
    assert (delivery["url"], delivery["status_code"]) == (f"{local_psp.webhook_target}{path}", 200)
    assert json.loads(delivery["body"])["result"] == "paid"
    assert delivery["event"] == ("payout.paid" if provider == "stripe" else "transfer booked")
    assert balances(funded_player).held_u == 0
    assert balances(funded_player).available_u == before.available_u - AMOUNT_U
    # The PSP's API says what its webhook said: reconciliation reads the same status.
    answer = get_provider(provider).status(
        withdrawal=withdrawal, idempotency_key=withdrawal.idempotency_key, psp_reference=withdrawal.psp_reference
    )
    assert (answer.status, answer.psp_status) == (PayoutStatus.PAID, PAID[provider])
    assert_ledger_ok()


def test_the_stripe_payout_webhook_is_a_connect_event_with_its_account(
    settings: Any, local_psp: PSPStub, funded_player: Any, finance: Any
) -> None:
    """Checked on the wire: a receiver of our own instead of the back office."""
    import stripe

    received: list[dict[str, Any]] = []
    from ops.tests.processes import free_port

    port = free_port()
    server = _receiver(port, received)
    local_psp.webhook_target = f"http://127.0.0.1:{port}"
    try:
        withdrawal = submitted(funded_player, finance, "stripe", DESTINATION[("stripe", "paid")])
        wait_for(lambda: bool(received), "the stub's webhook")
    finally:
        server.shutdown()
        server.server_close()
    (hook,) = received
    assert hook["path"] == STRIPE_PAYOUT_WEBHOOK_PATH
    event = stripe.Webhook.construct_event(
        hook["body"], hook["headers"]["Stripe-Signature"], settings.STRIPE_WEBHOOK_SECRET
    )
    assert (event["type"], event["account"]) == ("payout.paid", STUB_CONNECTED_ACCOUNT)
    assert event["data"]["object"]["id"] == withdrawal.psp_reference
    assert event["data"]["object"]["metadata"]["idempotency_key"] == withdrawal.idempotency_key


def _receiver(port: int, received: list[dict[str, Any]]) -> Any:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_the_failing_test_destination_fails_the_payout(
    provider: str, local_psp: PSPStub, funded_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    withdrawal = submitted(funded_player, finance, provider, DESTINATION[(provider, "failed")])

    wait_for(lambda: state(withdrawal) == Withdrawal.State.PAYOUT_FAILED, "the payout failure webhook")

    (delivery,) = local_psp.deliveries()
    assert delivery["status_code"] == 200
    assert delivery["event"] == ("payout.failed" if provider == "stripe" else "transfer failed")
    assert balances(funded_player).held_u == AMOUNT_U  # held for manual review, never lost
    (obj,) = local_psp.objects(KIND[provider])
    assert obj["status"] == "failed"
    if provider == "stripe":
        assert obj["failure_code"] == "account_closed"
        # Like Stripe: a failed payout's money is back on the connected account.
        assert local_psp.connected_balance(STUB_FAILING_ACCOUNT, "usdc") == AMOUNT_U
    answer = get_provider(provider).status(
        withdrawal=withdrawal, idempotency_key=withdrawal.idempotency_key, psp_reference=withdrawal.psp_reference
    )
    assert answer.status == PayoutStatus.FAILED
    assert_ledger_ok()


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_the_pending_test_destination_stays_pending_without_a_webhook(
    provider: str, local_psp: PSPStub, funded_player: Any, finance: Any
) -> None:
    withdrawal = submitted(funded_player, finance, provider, DESTINATION[(provider, "pending")])

    time.sleep(DELAY_S * 5)

    assert state(withdrawal) == Withdrawal.State.PAYOUT_SUBMITTED
    assert local_psp.deliveries() == []
    answer = get_provider(provider).status(
        withdrawal=withdrawal, idempotency_key=withdrawal.idempotency_key, psp_reference=withdrawal.psp_reference
    )
    assert answer.status == PayoutStatus.PENDING


def test_without_a_payout_delay_payouts_stay_as_created(stub: PSPStub, funded_player: Any, finance: Any) -> None:
    """The default of PSPStub (the tests' fixture): nothing settles by itself, tests move statuses by hand."""
    assert stub.payout_delay is None
    withdrawal = submitted(funded_player, finance, "stripe", DESTINATION[("stripe", "paid")])
    time.sleep(0.5)
    (obj,) = stub.objects("stripe_payout")
    assert obj["status"] == "pending" and stub.deliveries() == []
    assert state(withdrawal) == Withdrawal.State.PAYOUT_SUBMITTED


# The must-show: a fresh shell under the development settings --------------------------------------------

# Loaded by the child through PYTHONPATH: records every host name it resolves and every address it connects
# to, and refuses anything that is not this machine, so the child can never reach a real PSP, whatever it tries.
GUARD = textwrap.dedent(
    """
    import os, sys

    LOG = os.environ["NET_GUARD_LOG"]
    LOCAL = ("127.0.0.1", "localhost", "::1")

    def _host(address):
        return address[0] if isinstance(address, tuple) else address

    def guard(event, args):
        if event in ("socket.getaddrinfo", "socket.connect"):
            host = args[0] if event == "socket.getaddrinfo" else _host(args[1])
            if isinstance(host, bytes):
                host = host.decode()
            if isinstance(host, str) and host not in LOCAL and not host.startswith("/"):
                with open(LOG, "a") as log:
                    log.write(f"{event} {host}\\n")
                raise OSError(f"net guard: {host} is not this machine")

    sys.addaudithook(guard)
    """
)


def test_reconcile_payouts_from_a_fresh_shell_reaches_the_stub_and_no_real_psp(
    stub: PSPStub, funded_player: Any, finance: Any, tmp_path: Path
) -> None:
    """`python manage.py reconcile_payouts` in a new process under config.settings.local, with no PSP variable in
    its environment (the stub found only through the settings' default on STUB_PORT), asks the stub about both
    payouts and applies their answers; it resolves and connects to no host but this machine."""
    withdrawals = {
        provider: submitted(funded_player, finance, provider, DESTINATION[(provider, "paid")])
        for provider in ("stripe", "adyen")
    }
    for provider in withdrawals:
        (obj,) = stub.objects(KIND[provider])
        stub.set_object_status(obj["id"], PAID[provider])  # the PSP's later verdict, not sent as a webhook
    asked_before = len(stub.requests)
    (tmp_path / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "net.log"
    env = django_env(redis_url=str(django_settings.REDIS_URL), DJANGO_SETTINGS_MODULE="config.settings.local")
    for name in ("STRIPE_API_BASE", "ADYEN_API_BASE", "ENVIRONMENT", "DJANGO_DEBUG"):
        env.pop(name, None)
    env |= {"STUB_PORT": str(stub.port), "NET_GUARD_LOG": str(log), "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}

    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "reconcile_payouts", "--older-than-minutes", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert not log.exists(), f"the child tried to reach: {log.read_text()}"
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PSP says paid -> paid") == 2, result.stdout
    asked = [(r.method, r.path, r.headers.get("stripe-account")) for r in stub.requests[asked_before:]]
    stripe_wd, adyen_wd = withdrawals["stripe"], withdrawals["adyen"]
    assert ("GET", f"/v1/payouts/{stripe_wd.psp_reference}", STUB_CONNECTED_ACCOUNT) in asked
    assert ("GET", f"/transfers/{adyen_wd.psp_reference}", None) in asked
    assert {state(w) for w in withdrawals.values()} == {Withdrawal.State.PAID}
    # The guard works: the same child, told to use Stripe's real host, is stopped and says so.
    env["STRIPE_API_BASE"] = "https://api.stripe.com"
    probe = "import django; django.setup(); from ops import psp; psp.stripe_client(timeout_s=2).v1.balance.retrieve()"
    refused = subprocess.run(  # noqa: S603
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and log.read_text().startswith("socket.getaddrinfo api.stripe.com")
