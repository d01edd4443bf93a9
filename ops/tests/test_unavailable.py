"""With the database or the broker unreachable, the API and the webhooks answer 503 application/problem+json
with Retry-After (the admin a plain 503), never a 500 HTML page, and nothing is changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connections
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory
from ops.models import AuditRecord
from ops.unavailable import RETRY_AFTER_S, server_error, unavailable_dependency
from webhooks.models import Deposit, WebhookEvent
from webhooks.tests.helpers import STRIPE_URL, payment_intent, pending_deposit, snapshot, stripe_delivery

CLOSED_PORT = "1"  # nothing listens on port 1: connecting is refused at once


def assert_unavailable_problem(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == str(RETRY_AFTER_S)
    body = response.json()
    assert (body["type"], body["status"]) == ("service-unavailable", 503)
    assert b"<html" not in response.content.lower()


def everything() -> dict[str, Any]:
    """Rows a refused request must leave as they were (read with the database reachable)."""
    return {
        **snapshot(),
        "tokens": AuthToken.objects.count(),
        "audit": AuditRecord.objects.count(),
    }


@contextmanager
def database_unreachable() -> Iterator[None]:
    """Point the default connection at a closed port, then restore it (and reconnect)."""
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=CLOSED_PORT)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        connection.ensure_connection()


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_api_and_webhooks_answer_503_problem_json(settings: Any) -> None:
    settings.DEBUG = False
    player = UserFactory.create()
    _, token = AuthToken.objects.create(user=player)
    admin = Client(raise_request_exception=False)
    admin.force_login(StaffFactory.create(role="finance"))
    deposit = pending_deposit(player)
    _, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    headers = {k: v for k, v in delivery.headers.items() if k.lower() != "content-type"}
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    anonymous = APIClient(raise_request_exception=False)
    plain = Client(raise_request_exception=False)
    before = everything()

    with database_unreachable():
        assert_unavailable_problem(api.get("/v1/wallet"))
        assert_unavailable_problem(api.post("/v1/withdrawals", {"amount_u": 1000, "currency": "USD"}, format="json"))
        assert_unavailable_problem(
            anonymous.post("/v1/auth/login", {"email": player.email, "password": PASSWORD}, format="json")
        )
        assert_unavailable_problem(
            plain.post(STRIPE_URL, data=delivery.body, content_type="application/json", headers=headers)
        )
        page = admin.get("/admin/")
        assert page.status_code == 503 and page["Retry-After"] == str(RETRY_AFTER_S)
        assert page["Content-Type"].startswith("text/plain") and b"database is unreachable" in page.content
        assert plain.get("/health").status_code == 503

    assert everything() == before
    assert Deposit.objects.get(pk=deposit.pk).status == Deposit.Status.PENDING
    assert api.get("/v1/wallet").status_code == 200  # back as soon as the database is


def test_a_database_error_mid_transaction_is_a_503_and_nothing_is_stored(
    player: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """The connection drops while the webhook's event row is being written: the driver raises
    OperationalError; the answer is 503 problem+json and the event, the deposit and the ledger are unchanged."""
    settings.DEBUG = False
    enqueued: list[int] = []
    monkeypatch.setattr("webhooks.receiving._send_to_worker", enqueued.append)
    deposit = pending_deposit(player)
    _, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    before = snapshot()
    real_execute = psycopg.Cursor.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query.as_string(self) if hasattr(query, "as_string") else str(query)
        if "INSERT INTO" in text and "webhooks_webhookevent" in text:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    headers = {k: v for k, v in delivery.headers.items() if k.lower() != "content-type"}
    response = Client(raise_request_exception=False).post(
        STRIPE_URL, data=delivery.body, content_type="application/json", headers=headers
    )
    monkeypatch.undo()

    assert_unavailable_problem(response)
    assert snapshot() == before and enqueued == []
    assert not WebhookEvent.objects.exists()
    assert Deposit.objects.get(pk=deposit.pk).status == Deposit.Status.PENDING


@pytest.fixture
def broker_down() -> Iterator[None]:
    """Point the Celery app at a broker on a closed port (a fresh connection pool), then restore it."""
    from config.celery_app import app

    saved = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url = saved
        app._pool = None
        app.amqp._producer_pool = None


@pytest.mark.urls("ops.tests.unavailable_urls")
@pytest.mark.django_db
def test_broker_unreachable_on_enqueue_is_a_503_problem_json(broker_down: None, settings: Any) -> None:
    settings.DEBUG = False
    before = everything()
    assert_unavailable_problem(APIClient(raise_request_exception=False).post("/v1/_test/enqueue", {}, format="json"))
    assert_unavailable_problem(Client(raise_request_exception=False).post("/webhooks/_test/enqueue", {}))
    assert everything() == before


@pytest.mark.django_db
def test_broker_unreachable_a_webhook_is_stored_for_the_sweeper_not_a_500(
    player: Any, broker_down: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The production paths hand jobs to the broker after commit (robust callbacks): with the broker down the
    delivery is accepted and stored `received`, and `retry_stale_events` sends it once the broker is back."""
    settings.DEBUG = False
    settings.WEBHOOK_CREDIT_IN_REQUEST = False
    deposit = pending_deposit(player)
    event, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    headers = {k: v for k, v in delivery.headers.items() if k.lower() != "content-type"}
    with django_capture_on_commit_callbacks(execute=True):
        response = Client(raise_request_exception=False).post(
            STRIPE_URL, data=delivery.body, content_type="application/json", headers=headers
        )
    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get(provider="stripe", event_id=event["id"])
    assert stored.status == "received"
    assert Deposit.objects.get(pk=deposit.pk).status == Deposit.Status.PENDING


def test_the_handler_recognises_the_drivers_errors() -> None:
    import kombu.exceptions
    import redis.exceptions
    from django.db import InterfaceError, OperationalError

    assert unavailable_dependency(OperationalError("connection refused")) == "database"
    assert unavailable_dependency(InterfaceError("connection already closed")) == "database"
    assert unavailable_dependency(kombu.exceptions.OperationalError("Error 111")) == "broker"
    assert unavailable_dependency(redis.exceptions.ConnectionError("Error 111")) == "broker"
    try:
        try:
            raise redis.exceptions.TimeoutError("timed out")
        except redis.exceptions.TimeoutError as exc:
            raise RuntimeError("while enqueuing") from exc
    except RuntimeError as wrapped:
        assert unavailable_dependency(wrapped) == "broker"
    assert unavailable_dependency(ValueError("a bug")) is None


def test_any_other_error_on_the_api_is_a_500_problem_json_not_a_page(rf: Any) -> None:
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(rf.get("/v1/wallet"))
    assert response.status_code == 500 and response["Content-Type"] == "application/problem+json"
    assert b"server-error" in response.content
