"""schemathesis against `/v1/schema`: every operation, generated inputs, as a player and as an operator,
on PostgreSQL; no answer may be a server error.

Bounded: MAX_EXAMPLES generated cases per operation (each sent with both tokens), no shrinking, so
the run takes a bounded time whatever it finds. A 5xx fails the test with the request that caused it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from config.wsgi import application

MAX_EXAMPLES = 25

pytestmark = pytest.mark.django_db

# Loaded from the application itself at collection (no database needed to serve the schema).
# schemathesis.pytest.from_fixture would load it lazily, but it does not work with pytest 9.
schema = schemathesis.openapi.from_wsgi("/v1/schema", application)


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Iterator[None]:
    """As Django's own test client does, keep requests from closing the test's database connection.

    The connection holds the test transaction; Django's request_started / request_finished handlers
    would close it after each in-process (WSGI) request.
    """
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(db: Any, fund: Any) -> dict[str, str]:
    """A funded player's token and an operator's token (real, expiring knox tokens)."""
    from knox.models import AuthToken

    from accounts.tests.factories import StaffFactory, UserFactory

    player = UserFactory.create()
    fund(player, 1_000_000_000)
    operator = StaffFactory.create(role="admin")
    return {"player": AuthToken.objects.create(user=player)[1], "operator": AuthToken.objects.create(user=operator)[1]}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_operation_answers_a_server_error(case: Any, tokens: dict[str, str]) -> None:
    for role in ("player", "operator"):
        response = case.call(headers={"Authorization": f"Token {tokens[role]}"})
        case.validate_response(response, checks=[not_a_server_error])
