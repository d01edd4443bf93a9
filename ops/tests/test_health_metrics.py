"""Health endpoints, /metrics names and labels, problem+json, correlation ids, maintenance mode."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from ops.models import Switch
from ops.switches import switch_set
from payouts.tests.helpers import destination_for

pytestmark = pytest.mark.django_db


def test_health_and_liveness(client: Client) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["checks"]["database"]["status"] == "ok"


def test_health_is_503_when_the_database_is_unreachable(client: Client, settings: Any, monkeypatch: Any) -> None:
    """A real connection attempt to a port where no PostgreSQL listens; liveness stays 200."""
    from django.db.utils import ConnectionHandler

    down = ConnectionHandler({"default": {**settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": "1"}})
    monkeypatch.setattr("ops.health.connections", down)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down" and response.json()["checks"]["database"]["status"] == "down"
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/live").status_code == 200
    down.close_all()


@pytest.mark.parametrize("path", ["/health/ready", "/api/health"])
def test_readiness_checks_postgres_and_redis(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["database"]["vendor"] == "postgresql"
    assert body["checks"]["broker"] == {**body["checks"]["broker"], "status": "ok", "kind": "redis"}


def test_readiness_is_503_when_the_broker_is_down(client: Client, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["status"] == "down"
    assert response.json()["checks"]["database"]["status"] == "ok"


def test_metrics_use_the_runbook_names_and_route_patterns(client: Client, player: Any, api_client_for: Any) -> None:
    api_client_for(player).get("/v1/ledger/entries?limit=5")
    client.get("/v1/wallet")
    text = client.get("/metrics").content.decode()
    assert 'http_request_duration_seconds_count{method="GET",path="/v1/ledger/entries",status="200"}' in text
    assert 'path="/v1/wallet",status="401"' in text
    assert "?limit" not in text
    for name in ("idempotency_events_total", "worker_runs_total", "ledger_imbalance_total", "tvl_total_cash_u"):
        assert f"# TYPE {name.removesuffix('_total')}" in text or f"# TYPE {name}" in text, name


def test_correlation_id_is_echoed_or_created(client: Client) -> None:
    assert client.get("/health", HTTP_X_REQUEST_ID="abc123")["X-Request-ID"] == "abc123"
    assert len(client.get("/health")["X-Request-ID"]) == 32


def test_maintenance_mode_refuses_players_writes_only(
    player: Any, api_client_for: Any, make_staff: Any, fund: Any, client: Client
) -> None:
    from payouts.models import Withdrawal
    from payouts.services import withdrawal_request

    fund(player, 50_000_000)
    pending = withdrawal_request(
        user=player, amount_u=1_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    finance = make_staff(role="finance")
    finance.set_password("pw-finance-1")
    finance.save()
    switch_set(name=Switch.Name.MAINTENANCE, on=True, reason="cutover", actor=make_staff(role="admin"))
    api = api_client_for(player)

    refused = api.post(
        "/v1/withdrawals",
        {"amount_u": 1_000_000, "currency": "USDC", "provider": "adyen", "destination": destination_for("adyen")},
        format="json",
        HTTP_IDEMPOTENCY_KEY="maint-1",
    )
    assert refused.status_code == 503 and refused.json()["type"] == "maintenance" and refused["Retry-After"]
    assert Withdrawal.objects.count() == 1
    assert api.get("/v1/wallet").status_code == 200  # reads stay up
    # The login, operators' API writes, webhooks and health keep working.
    login = client.post(
        "/v1/auth/login", {"email": finance.email, "password": "pw-finance-1"}, content_type="application/json"
    )
    assert login.status_code == 200
    approve = client.post(
        f"/v1/withdrawals/{pending.pk}/approve",
        content_type="application/json",  # the API parses JSON only
        HTTP_AUTHORIZATION=f"Token {login.json()['token']}",
    )
    assert approve.status_code == 200, approve.content
    assert client.post("/webhooks/stripe", b"{}", content_type="application/json").status_code != 503
    assert client.get("/health").status_code == 200

    text = client.get("/metrics").content.decode()
    assert 'http_request_duration_seconds_count{method="POST",path="/v1/withdrawals",status="maintenance"} 1.0' in text
    assert 'path="/v1/withdrawals",status="503"' not in text and 'path="<unmatched>",status="503"' not in text


def test_unknown_api_route_is_404(client: Client) -> None:
    assert client.get("/v1/nothing-here").status_code == 404
