"""A client generated from `/v1/schema` by a third-party generator (openapi-python-client) imports as
generated and drives the money loop: log in, deposit (credited by the PSP's signed webhook), bet, withdraw, and two
operators' approval (202, then 200).
Every refusal it meets comes back as the generated `Problem` model, under a status the schema documents
for that operation with that problem `type`.

The schema is fetched from the application (`GET /v1/schema`, in process), the generator runs offline on
that file (no network: its proxies point at a closed port), and the generated package is imported as is.
Its HTTP calls go to the application in process (httpx's WSGI transport, passed through the client's own
`httpx_args`), on the test's database connection.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from config.wsgi import application
from payouts.tests.helpers import destination_for
from rounds.tests.conftest import Clock, Prices
from webhooks.stub import PSPStub
from webhooks.tests.helpers import STRIPE_URL, stripe_delivery

pytestmark = pytest.mark.django_db

PACKAGE = "bo_generated_client"
BASE_URL = "http://testserver"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, dict[str, Any]]]:
    """The generated package, imported (every module of it) from a fresh output folder, and the schema."""
    root = tmp_path_factory.mktemp("generated")
    with connection_kept(), httpx.Client(transport=httpx.WSGITransport(app=application), base_url=BASE_URL) as http:
        served = http.get("/v1/schema")  # serving the schema needs no database
    assert served.status_code == 200, served.text
    (root / "schema.yaml").write_bytes(served.content)
    offline = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    offline["PATH"] = f"{GENERATOR.parent}{os.pathsep}{offline.get('PATH', '')}"  # its ruff post-hooks
    run = subprocess.run(
        [str(GENERATOR), "generate", "--path", "schema.yaml", "--meta", "none", "--output-path", PACKAGE],
        cwd=root,
        env=offline,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Warning" not in output and "Error" not in output, output  # nothing of the schema was skipped
    sys.path.insert(0, str(root))
    try:
        package = importlib.import_module(PACKAGE)
        for module in pkgutil.walk_packages(package.__path__, f"{PACKAGE}."):
            importlib.import_module(module.name)  # every operation and model imports as generated
        yield package, yaml.safe_load(served.content)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@contextlib.contextmanager
def connection_kept() -> Iterator[None]:
    """Keep in-process requests from closing the test's database connection (as Django's test client does)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Iterator[None]:
    with connection_kept():
        yield


@pytest.fixture
def open_usd_round(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
    """open_usd_round() -> an OPEN round in USD (what the stripe deposit credits), the clock before its lock."""
    from rounds.tests.factories import RoundFactory

    settings.ROUND_CURRENCY = "USD"
    settings.MIN_STAKE_U = 100
    clock, prices = Clock(), Prices()
    monkeypatch.setattr("rounds.clock.now", clock)
    monkeypatch.setattr("rounds.services.configured_sources", prices.sources)
    monkeypatch.setattr("rounds.settlement.configured_sources", prices.sources)
    return lambda: RoundFactory.create(code="20250908", reference="100", clock=clock, prices=prices)


def in_process(package: ModuleType, **kwargs: Any) -> Any:
    """The generated Client (or AuthenticatedClient, given a token) talking to the application in process."""
    args = {"base_url": BASE_URL, "httpx_args": {"transport": httpx.WSGITransport(app=application)}}
    if "token" in kwargs:
        return package.AuthenticatedClient(**args, prefix="Token", **kwargs)
    return package.Client(**args)


def refused(
    schema: dict[str, Any], path: str, method: str, answer: Any, status: int, problem_type: str, problem: Any
) -> Any:
    """Assert `answer` parsed into the generated Problem, with a status and type the operation documents."""
    parsed: Any = answer.parsed
    assert answer.status_code == status, answer.content
    assert isinstance(parsed, problem), parsed
    assert (parsed.status, parsed.type_) == (status, problem_type)  # the generator names `type` `type_`
    documented = schema["paths"][path][method]["responses"][str(status)]
    assert "application/problem+json" in documented["content"]
    assert f"`{problem_type}`" in documented["description"], documented["description"]
    return parsed


def test_generated_client_drives_login_deposit_bet_and_withdrawal(
    generated: tuple[ModuleType, dict[str, Any]],
    stub: PSPStub,
    open_usd_round: Callable[[], Any],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    assert_ledger_ok: Any,
) -> None:
    package, schema = generated
    models = importlib.import_module(f"{PACKAGE}.models")
    ops = {
        name: importlib.import_module(f"{PACKAGE}.api.v1.{name}")
        for name in ("v1_auth_login_create", "v1_deposits_create", "v1_wallet_retrieve")
        + ("v1_rounds_bets_create", "v1_withdrawals_create")
    }
    Problem = models.Problem  # noqa: N806
    from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory
    from webhooks.tasks import process_webhook_event

    monkeypatch.setattr("webhooks.receiving._send_to_worker", lambda event_id: process_webhook_event.apply([event_id]))
    player = UserFactory.create()
    anonymous = in_process(package)

    # Log in; a wrong password is a 401 problem.
    bad = ops["v1_auth_login_create"].sync_detailed(
        client=anonymous, body=models.TokenLoginInput(email=player.email, password="not-it")
    )
    refused(schema, "/v1/auth/login", "post", bad, 401, "auth/invalid-credentials", Problem)
    login = ops["v1_auth_login_create"].sync_detailed(
        client=anonymous, body=models.TokenLoginInput(email=player.email, password=PASSWORD)
    )
    assert login.status_code == 200 and isinstance(login.parsed, models.TokenLoginOutput)
    me = in_process(package, token=login.parsed.token)

    # No credentials: 401.
    refused(
        schema,
        "/v1/wallet",
        "get",
        ops["v1_wallet_retrieve"].sync_detailed(client=anonymous),
        401,
        "not-authenticated",
        Problem,
    )

    # Deposit 50.00 USD with stripe; the PSP's signed webhook credits it.
    started = ops["v1_deposits_create"].sync_detailed(
        client=me,
        body=models.DepositStartInput(provider=models.ProviderEnum.STRIPE, amount_u=5000, currency="USD"),
        idempotency_key=str(uuid.uuid4()),
    )
    assert started.status_code == 201 and isinstance(started.parsed, models.Deposit), started.content
    assert started.parsed.status == "pending"
    (intent,) = stub.objects("stripe_payment_intent")
    _, delivery = stripe_delivery(
        "payment_intent.succeeded", {**intent, "status": "succeeded", "amount_received": intent["amount"]}
    )
    with (
        httpx.Client(transport=httpx.WSGITransport(app=application), base_url=BASE_URL) as psp,
        django_capture_on_commit_callbacks(execute=True),
    ):
        webhook = psp.post(STRIPE_URL, content=delivery.body, headers=dict(delivery.headers))
    assert webhook.status_code == 200, webhook.content
    wallet = ops["v1_wallet_retrieve"].sync_detailed(client=me)
    assert wallet.status_code == 200 and isinstance(wallet.parsed, models.Wallet)
    assert {(b.currency, b.available_u) for b in wallet.parsed.balances} >= {("USD", 5000)}

    # Bet 10.00 on the open round; a second bet on it is 409 rounds/already-bet; a bad body is 400.
    round_obj = open_usd_round()
    bet = ops["v1_rounds_bets_create"]
    placed = bet.sync_detailed(
        round_obj.code,
        client=me,
        body=models.BetPlaceInput(side=models.SideEnum.UP, stake_u=1000),
        idempotency_key=str(uuid.uuid4()),
    )
    assert placed.status_code == 201 and isinstance(placed.parsed, models.Bet), placed.content
    again = bet.sync_detailed(
        round_obj.code,
        client=me,
        body=models.BetPlaceInput(side=models.SideEnum.DOWN, stake_u=1000),
        idempotency_key=str(uuid.uuid4()),
    )
    refused(schema, "/v1/rounds/{code}/bets", "post", again, 409, "rounds/already-bet", Problem)
    zero = bet.sync_detailed(
        round_obj.code,
        client=me,
        body=models.BetPlaceInput(side=models.SideEnum.UP, stake_u=0),
        idempotency_key=str(uuid.uuid4()),
    )
    invalid = refused(schema, "/v1/rounds/{code}/bets", "post", zero, 400, "validation-error", Problem)
    assert "stake_u" in invalid.errors

    # Withdraw 30.00 of the 40.00 left; more than what is left is 422 ledger/insufficient-funds.
    withdraw = ops["v1_withdrawals_create"]

    def withdrawal(amount_u: int) -> Any:
        destination = models.WithdrawalCreateInputDestination.from_dict(destination_for("adyen"))
        body = models.WithdrawalCreateInput(
            amount_u=amount_u, currency=models.CurrencyEnum.USD, provider="adyen", destination=destination
        )
        return withdraw.sync_detailed(client=me, body=body, idempotency_key=str(uuid.uuid4()))

    requested = withdrawal(3000)
    assert requested.status_code == 201 and isinstance(requested.parsed, models.WithdrawalOutput), requested.content
    assert (requested.parsed.state, requested.parsed.amount_u) == ("requested", 3000)
    short = refused(schema, "/v1/withdrawals", "post", withdrawal(1001), 422, "ledger/insufficient-funds", Problem)
    assert (short.balance_u, short.required_u) == (1000, 1001), short  # extension members, typed
    wallet = ops["v1_wallet_retrieve"].sync_detailed(client=me)
    usd = next(b for b in wallet.parsed.balances if b.currency == "USD")
    assert (usd.available_u, usd.held_u, usd.in_open_bets_u) == (1000, 3000, 1000)

    # Above the four-eyes threshold the first operator's approval is a 202; the second one's a 200.
    settings.FOUR_EYES_THRESHOLDS = {"USD": "20.00"}
    approve = importlib.import_module(f"{PACKAGE}.api.v1.v1_withdrawals_approve_create")
    path, withdrawal_id = "/v1/withdrawals/{withdrawal_id}/approve", requested.parsed.id
    as_player = approve.sync_detailed(withdrawal_id, client=me, body=models.WithdrawalApproveInput())
    refused(schema, path, "post", as_player, 403, "forbidden", Problem)
    first, second = (
        in_process(package, token=login_as(package, models, StaffFactory.create(role="finance").email))
        for _ in range(2)
    )
    signed = approve.sync_detailed(withdrawal_id, client=first, body=models.WithdrawalApproveInput(reason="checked"))
    assert signed.status_code == 202 and isinstance(signed.parsed, models.StaffWithdrawalOutput), signed.content
    assert signed.parsed.state == "requested" and len(signed.parsed.pending_signoffs) == 1
    again = approve.sync_detailed(withdrawal_id, client=first, body=models.WithdrawalApproveInput(reason="again"))
    refused(schema, path, "post", again, 409, "approvals/second-operator-required", Problem)
    done = approve.sync_detailed(withdrawal_id, client=second, body=models.WithdrawalApproveInput(reason="agreed"))
    assert done.status_code == 200 and isinstance(done.parsed, models.StaffWithdrawalOutput), done.content
    assert done.parsed.state == "approved"
    assert_ledger_ok()


def login_as(package: ModuleType, models: ModuleType, email: str) -> str:
    """A token for `email` (the factories' password), through the generated client."""
    from accounts.tests.factories import PASSWORD

    login = importlib.import_module(f"{PACKAGE}.api.v1.v1_auth_login_create")
    answer = login.sync_detailed(
        client=in_process(package), body=models.TokenLoginInput(email=email, password=PASSWORD)
    )
    assert answer.status_code == 200, answer.content
    return str(answer.parsed.token)
