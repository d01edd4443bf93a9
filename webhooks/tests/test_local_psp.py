"""The local PSP finishes a deposit by itself: `POST /v1/deposits`, then the stub's pay page (or `stub_pay`) pays
or declines it and the stub sends the signed payment webhook to the running back office (live_server), which
credits or fails the deposit. docs/ops/local_psp.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.urls import reverse

from ledger.models import Journal
from webhooks.models import Deposit
from webhooks.stub import (
    ADYEN_DEPOSIT_WEBHOOK_PATH,
    ADYEN_PAYOUT_WEBHOOK_PATH,
    DEFAULT_ADYEN_HMAC_KEY,
    DEFAULT_STRIPE_WEBHOOK_SECRET,
    STRIPE_DEPOSIT_WEBHOOK_PATH,
    STRIPE_PAYOUT_WEBHOOK_PATH,
    PSPStub,
)

from .helpers import available, snapshot

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
AMOUNT_U = 4200
PAID_STATUS = {"stripe": "succeeded", "adyen": "completed"}
DECLINED_STATUS = {"stripe": "canceled", "adyen": "refused"}


@pytest.fixture
def local_psp(settings: Any, live_server: Any) -> Iterator[PSPStub]:
    """The stub as `make run` starts it: webhooks to the running back office, signed with its secrets."""
    with PSPStub(
        webhook_target=live_server.url,
        stripe_webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
        adyen_hmac_key=settings.ADYEN_HMAC_KEY,
    ) as psp:
        settings.STRIPE_API_BASE = psp.url
        settings.ADYEN_API_BASE = psp.url
        settings.DEPOSIT_PROVIDER_TIMEOUT_S = 5.0
        yield psp


def start_deposit(api_client_for: Any, player: Any, provider: str, currency: str = "EUR") -> Deposit:
    """`POST /v1/deposits` through the real SDK against the stub; the deposit its answer names."""
    body = {"provider": provider, "amount_u": AMOUNT_U, "currency": currency}
    answer = api_client_for(player).post("/v1/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert answer.status_code == 201, answer.content
    deposit = Deposit.objects.get(public_id=answer.json()["id"])
    assert deposit.status == Deposit.Status.PENDING and deposit.psp_id
    return deposit


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_the_pay_page_pays_and_the_webhook_credits_the_deposit(
    provider: str, local_psp: PSPStub, player: Any, api_client_for: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    deposit = start_deposit(api_client_for, player, provider)
    page = requests.get(f"{local_psp.url}/_stub/pay/{deposit.psp_id}", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert f'<form method="post" action="/_stub/pay/{deposit.psp_id}">' in page.text
    assert 'value="succeeded">Pay</button>' in page.text and 'value="failed">Decline</button>' in page.text
    assert f"{AMOUNT_U} EUR" in page.text and deposit.reference in page.text and "<script" not in page.text

    paid = requests.post(f"{local_psp.url}/_stub/pay/{deposit.psp_id}", data={"outcome": "succeeded"}, timeout=30)

    assert paid.status_code == 200, paid.text
    assert "the back office answered HTTP 200" in paid.text and "<form" not in paid.text  # settled: no buttons
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.CREDITED
    assert available(player, "EUR") == AMOUNT_U
    (delivery,) = local_psp.deliveries()
    path = STRIPE_DEPOSIT_WEBHOOK_PATH if provider == "stripe" else ADYEN_DEPOSIT_WEBHOOK_PATH
    assert (delivery["url"], delivery["status_code"]) == (f"{live_server_url(local_psp)}{path}", 200)
    (kind, obj) = local_psp.lifecycle.payment(deposit.psp_id) or ("", {})
    assert obj["status"] == PAID_STATUS[provider]
    # Paying again re-sends the same event: the back office credits nothing more. Declining now is refused.
    again = requests.post(f"{local_psp.url}/_stub/pay/{deposit.psp_id}", json={"outcome": "succeeded"}, timeout=30)
    assert again.status_code == 200 and again.json()["webhook"]["status_code"] == 200
    refused = requests.post(f"{local_psp.url}/_stub/pay/{deposit.psp_id}", json={"outcome": "failed"}, timeout=30)
    assert refused.status_code == 409 and "already succeeded" in refused.json()["error"]
    assert available(player, "EUR") == AMOUNT_U and Journal.objects.filter(type="deposit").count() == 1
    assert_ledger_ok()


def live_server_url(stub: PSPStub) -> str:
    return str(stub.webhook_target).rstrip("/")


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_decline_fails_the_deposit_and_credits_nothing(
    provider: str, local_psp: PSPStub, player: Any, api_client_for: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    deposit = start_deposit(api_client_for, player, provider)

    answer = requests.post(f"{local_psp.url}/_stub/pay/{deposit.psp_id}", json={"outcome": "failed"}, timeout=30)

    assert answer.status_code == 200, answer.text
    event = {"stripe": "payment_intent.canceled", "adyen": "AUTHORISATION success=false"}[provider]
    assert (answer.json()["event"], answer.json()["status"]) == (event, DECLINED_STATUS[provider])
    assert answer.json()["webhook"]["status_code"] == 200
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.FAILED
    assert available(player, "EUR") == 0 and not Journal.objects.filter(type="deposit").exists()
    assert_ledger_ok()


def test_the_pay_page_escapes_what_it_shows_and_refuses_bad_calls(local_psp: PSPStub) -> None:
    import stripe

    client = stripe.StripeClient("sk_test_x", base_addresses={"api": local_psp.url})
    intent = client.v1.payment_intents.create(
        params={"amount": 100, "currency": "eur", "description": '<script>alert("x")</script>'}
    )
    page = requests.get(f"{local_psp.url}/_stub/pay/{intent.id}", timeout=10).text
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page

    unknown = requests.get(f"{local_psp.url}/_stub/pay/pi_%3Cb%3Enope", timeout=10)
    assert unknown.status_code == 404 and "<b>nope" not in unknown.text and "&lt;b&gt;nope" in unknown.text
    bad = requests.post(f"{local_psp.url}/_stub/pay/{intent.id}", json={"outcome": "maybe"}, timeout=10)
    assert bad.status_code == 400 and "outcome must be one of" in bad.json()["error"]
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
    assert local_psp.deliveries() == []


def test_without_a_webhook_target_nothing_is_settled() -> None:
    import stripe

    with PSPStub() as stub:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": stub.url})
        intent = client.v1.payment_intents.create(params={"amount": 100, "currency": "eur"})
        answer = requests.post(f"{stub.url}/_stub/pay/{intent.id}", json={"outcome": "succeeded"}, timeout=10)
        assert answer.status_code == 409 and "--webhook-target" in answer.json()["error"]
        assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


# The command -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "decline"), [("stripe", False), ("adyen", False), ("stripe", True)])
def test_stub_pay_settles_the_deposit_and_prints_one_line(
    provider: str,
    decline: bool,
    local_psp: PSPStub,
    settings: Any,
    player: Any,
    api_client_for: Any,
    inline_worker: list[int],
) -> None:
    deposit = start_deposit(api_client_for, player, provider)
    settings.ENVIRONMENT = "development"
    out = StringIO()

    call_command("stub_pay", str(deposit.public_id), *(["--decline"] if decline else []), stdout=out)

    outcome = "failed" if decline else "succeeded"
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"deposit {deposit.public_id}: {outcome} at the stub")
    assert lines[0].endswith("webhook answered HTTP 200")
    deposit.refresh_from_db()
    assert deposit.status == (Deposit.Status.FAILED if decline else Deposit.Status.CREDITED)
    assert available(player, "EUR") == (0 if decline else AMOUNT_U)


def test_stub_pay_refusals_are_one_line_and_change_nothing(
    local_psp: PSPStub, settings: Any, player: Any, api_client_for: Any
) -> None:
    deposit = start_deposit(api_client_for, player, "stripe")
    frozen = snapshot()
    settings.ENVIRONMENT = "development"
    refusals = {
        "not-a-uuid": "'not-a-uuid' is not a deposit id",
        str(uuid.uuid4()): "No deposit with id",
    }
    for deposit_id, message in refusals.items():
        with pytest.raises(CommandError, match=message) as refused:
            call_command("stub_pay", deposit_id, stdout=StringIO())
        assert "\n" not in str(refused.value)
    for environment in ("production", "prod-local", "test"):
        settings.ENVIRONMENT = environment
        with pytest.raises(CommandError, match="stub_pay is for development only") as refused:
            call_command("stub_pay", str(deposit.public_id), stdout=StringIO())
        assert "\n" not in str(refused.value)
    settings.ENVIRONMENT = "development"
    settings.STRIPE_API_BASE = ""
    with pytest.raises(CommandError, match="STRIPE_API_BASE is not set"):
        call_command("stub_pay", str(deposit.public_id), stdout=StringIO())
    assert snapshot() == frozen and local_psp.deliveries() == []
    (intent,) = local_psp.objects("stripe_payment_intent")
    assert intent["status"] == "requires_payment_method"


def test_stub_pay_exits_non_zero_with_one_line_from_a_shell() -> None:
    """What a developer sees: `manage.py stub_pay` with a bad id under the development settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "STRIPE_API_BASE", "ADYEN_API_BASE")}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.local"}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "stub_pay", "nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert (
        result.stderr.strip().splitlines()[-1]
        == "CommandError: 'nope' is not a deposit id (the id in POST /v1/deposits' answer)."
    )


# What the stub and the back office must agree on ------------------------------------------------------


def test_the_stub_posts_to_the_back_office_webhook_paths() -> None:
    assert reverse("webhook-stripe") == STRIPE_DEPOSIT_WEBHOOK_PATH
    assert reverse("webhook-adyen") == ADYEN_DEPOSIT_WEBHOOK_PATH
    assert reverse("payouts-webhook-stripe") == STRIPE_PAYOUT_WEBHOOK_PATH
    assert reverse("payouts-webhook-adyen") == ADYEN_PAYOUT_WEBHOOK_PATH


def test_development_settings_point_at_the_stub_and_share_its_secrets() -> None:
    """A fresh shell (no PSP variables) under config.settings.local: the SDK bases are the stub on STUB_PORT and
    the webhook secrets are the ones the stub signs with by default."""
    names = ("STRIPE_API_BASE", "ADYEN_API_BASE", "STRIPE_WEBHOOK_SECRET", "ADYEN_HMAC_KEY", "ENVIRONMENT")
    env = {k: v for k, v in os.environ.items() if k not in (*names, "STUB_PORT")}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.local", "STUB_PORT": "18299"}
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps([getattr(s, n) for n in {names}]))"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    stripe_base, adyen_base, secret, hmac_key, environment = json.loads(result.stdout.strip().splitlines()[-1])
    assert (stripe_base, adyen_base) == ("http://127.0.0.1:18299", "http://127.0.0.1:18299")
    assert (secret, hmac_key) == (DEFAULT_STRIPE_WEBHOOK_SECRET, DEFAULT_ADYEN_HMAC_KEY)
    assert environment == "development"
