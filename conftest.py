"""Shared test fixtures: players, operators, authenticated API clients, funded accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import StaffFactory, UserFactory


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Any:
    """The test database migrated by the owner, then every application connection as the app role.

    `setup_db_roles` grants the application role (`DB_APP_ROLE`) exactly what production's has, and
    from then on each connection (the tests', their threads') switches to it (SET SESSION AUTHORIZATION)
    (ops/tests/db_role_harness.py): the suite runs with production's privileges.
    """
    from io import StringIO

    from django.core.management import call_command

    from ops.tests.db_role_harness import disable_app_role, enable_app_role

    with django_db_blocker.unblock():
        call_command("setup_db_roles", stdout=StringIO())
        enable_app_role()
    yield
    with django_db_blocker.unblock():
        disable_app_role()


@pytest.fixture
def db_owner(db: Any) -> Callable[[], Any]:
    """`with db_owner() as cursor:` the owner's rights on the test's connection, to plant a fault the
    application role may not write (a corrupt balance, an entry outside the posting functions)."""
    from ops.tests.db_role_harness import as_db_owner

    return as_db_owner


@pytest.fixture(autouse=True)
def _empty_cache() -> Any:
    """Every test starts with an empty default cache: a round code reused from an earlier test (with its
    rows rolled back) must not find that test's cached round answers (rounds.apis.round_output); and with
    every per-process read cache (`ops.ttl`: tokens, the maintenance switch, OPEN rounds' answers) empty."""
    from django.core.cache import cache

    from ops.ttl import ttl_caches_clear

    cache.clear()
    ttl_caches_clear()
    yield


class ManualClock:
    """A monotonic clock that moves only when told: `advance(seconds)`."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def ttl_clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The clock of every per-process read cache (`ops.ttl`), moved by hand: staleness tested without sleeping."""
    import accounts.authentication  # noqa: F401  (each module creates its cache on import)
    import ops.switches  # noqa: F401
    import rounds.apis  # noqa: F401
    from ops import ttl

    clock = ManualClock()
    for cache in ttl._caches:
        monkeypatch.setattr(cache, "clock", clock)
    return clock


@pytest.fixture(autouse=True)
def _documented_problems() -> Any:
    """Every problem+json answer of a `/v1/schema` operation in any test must be documented on that operation,
    status and `type` (ops/tests/problem_audit.py): a refusal the schema does not list fails the test."""
    from ops.tests.problem_audit import problems_checked

    with problems_checked() as undocumented:
        yield
    if undocumented:
        pytest.fail("Problem answers missing from /v1/schema:\n" + "\n".join(sorted(set(undocumented))))


@pytest.fixture
def player(db: Any) -> Any:
    return UserFactory.create()


@pytest.fixture
def make_player(db: Any) -> Callable[..., Any]:
    return UserFactory


@pytest.fixture
def make_staff(db: Any) -> Callable[..., Any]:
    """make_staff(role="finance") -> an operator in that role."""
    return StaffFactory


def token_client(user: Any) -> APIClient:
    """An API client authenticated with a real expiring token for `user`."""
    from knox.models import AuthToken

    _, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def api_client_for() -> Callable[[Any], APIClient]:
    return token_client


@pytest.fixture
def fund() -> Callable[..., Any]:
    """fund(user, amount_u, currency="USDC"): credit a player's available balance from psp:test."""
    from ledger.tests.factories import fund_player

    return fund_player


@pytest.fixture
def assert_ledger_ok() -> Callable[[], None]:
    """Assert every ledger invariant holds (core and app-registered)."""
    from ledger.reconciliation import ledger_breaches

    def _check() -> None:
        breaches = ledger_breaches()
        assert breaches == [], "\n".join(str(b) for b in breaches)

    return _check


@pytest.fixture
def stub(settings: Any) -> Iterator[Any]:
    """The PSP stub (`webhooks.stub.PSPStub`) on 127.0.0.1 with both SDKs pointed at it and a short deposit
    timeout; an app's conftest may override it (payouts: a short payout timeout)."""
    from webhooks.stub import PSPStub

    with PSPStub(timeout_delay=2.0) as psp:
        settings.STRIPE_API_BASE = psp.url
        settings.ADYEN_API_BASE = psp.url
        settings.DEPOSIT_PROVIDER_TIMEOUT_S = 1.0
        yield psp


@pytest.fixture
def celery_worker_on_redis(transactional_db: Any) -> Any:
    """A real Celery worker (threads) consuming from Redis on 127.0.0.1 for the length of a test.

    Tasks run in the worker's threads on their own database connections, so tests using this need
    committed data (transactional_db). Stale messages from earlier runs are purged first.
    """
    from celery.contrib.testing.worker import start_worker

    from config.celery_app import app

    assert app.conf.broker_url.startswith("redis://"), app.conf.broker_url
    app.control.purge()
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=30):
        yield app


@pytest.fixture
def browser() -> Any:
    """Debian's Chromium through Playwright, for the tests marked `browser` (see ops/tests/browser.py)."""
    from ops.tests.browser import chromium

    with chromium() as launched:
        yield launched
