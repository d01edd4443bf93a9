"""The house manual's development endpoint `POST /simulate/deposit_webhook`."""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

import pytest
from django.urls import clear_url_caches

from ledger.models import Journal

from .helpers import available, snapshot

pytestmark = pytest.mark.django_db
URL = "/simulate/deposit_webhook"


def _post(client: Any, body: dict[str, Any]) -> Any:
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def test_simulated_deposit_credits_through_the_ledger(client: Any, player: Any, assert_ledger_ok: Any) -> None:
    response = _post(client, {"user_id": str(player.public_id), "amount_u": 1_000_000})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["currency"], body["amount_u"], body["balance_u"], body["status"]) == (
        "USDC",
        1_000_000,
        1_000_000,
        "processed",
    )
    journal = Journal.objects.get(reference=f"deposit:simulation:{body['reference']}")
    assert journal.type == "deposit"
    assert available(player, "USDC") == 1_000_000
    assert_ledger_ok()


def test_amount_zero_returns_the_balance_and_credits_nothing(client: Any, player: Any) -> None:
    _post(client, {"user_id": str(player.public_id), "amount_u": 2_000_000})
    before = snapshot()

    response = _post(client, {"user_id": str(player.public_id), "amount_u": 0})

    assert response.status_code == 200
    assert (response.json()["balance_u"], response.json()["amount_u"]) == (2_000_000, 0)
    assert snapshot() == before


def test_same_reference_credits_once_and_other_payload_is_409(client: Any, player: Any) -> None:
    body = {"user_id": str(player.public_id), "amount_u": 3_000_000, "currency": "USDC", "reference": "sim-1"}

    assert _post(client, body).json()["duplicate"] is False
    assert _post(client, body).json()["duplicate"] is True
    mismatch = _post(client, {**body, "amount_u": 4_000_000})

    assert mismatch.status_code == 409 and mismatch.json()["type"] == "webhook/reference-mismatch"
    assert available(player, "USDC") == 3_000_000


@pytest.mark.parametrize(
    ("body", "status", "problem_type"),
    [
        ({"amount_u": -1}, 400, "webhook/invalid-amount"),
        ({"amount_u": 1.5}, 400, "webhook/invalid-amount"),
        ({"currency": "XYZ"}, 400, "webhook/unknown-currency"),
        ({"user_id": str(uuid.UUID(int=7))}, 422, "webhook/unknown-user"),
    ],
)
def test_bad_simulation_input(client: Any, player: Any, body: dict[str, Any], status: int, problem_type: str) -> None:
    before = snapshot()

    response = _post(client, {"user_id": str(player.public_id), "amount_u": 1, **body})

    assert (response.status_code, response.json()["type"]) == (status, problem_type)
    assert snapshot() == before


def test_disabled_simulation_is_404(client: Any, player: Any, settings: Any) -> None:
    settings.SIMULATION_ENABLED = False
    before = snapshot()

    response = _post(client, {"user_id": str(player.public_id), "amount_u": 1_000_000})

    assert response.status_code == 404
    assert snapshot() == before


def test_the_url_is_not_routed_when_simulation_is_off_at_import(settings: Any) -> None:
    import webhooks.urls

    settings.SIMULATION_ENABLED = False
    try:
        module = importlib.reload(webhooks.urls)
        assert "simulate-deposit-webhook" not in [p.name for p in module.urlpatterns]
    finally:
        settings.SIMULATION_ENABLED = True
        importlib.reload(webhooks.urls)
        clear_url_caches()


def test_production_settings_force_simulation_off() -> None:
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "config" / "settings" / "production.py").read_text()
    assert "\nSIMULATION_ENABLED = False\n" in source
