"""The Idempotency-Key contract: replay, mismatch, in progress, errors, and concurrency."""

from __future__ import annotations

import threading
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from conftest import token_client
from ledger.models import Account, Journal
from ops.models import IdempotencyKey

pytestmark = pytest.mark.urls("ops.tests.urls")
URL = "/test/pay-house"


def balances() -> tuple:
    return tuple(Account.objects.order_by("pk").values_list("balance_u", flat=True)), Journal.objects.count()


@pytest.fixture
def client(player: Any, fund: Any) -> APIClient:
    fund(player, 1_000)
    return token_client(player)


@pytest.mark.django_db
def test_same_key_same_request_replays_without_moving_money(client: APIClient) -> None:
    first = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    before = balances()
    again = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert balances() == before


@pytest.mark.django_db
def test_same_key_other_request_is_422_and_moves_nothing(client: APIClient) -> None:
    client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    before = balances()
    response = client.post(URL, {"amount_u": 101}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "idempotency/key-reused"
    assert balances() == before


@pytest.mark.django_db
def test_key_is_per_user(client: APIClient, make_player: Any, fund: Any) -> None:
    other = make_player()
    fund(other, 500)
    client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = token_client(other).post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


@pytest.mark.django_db
def test_missing_or_oversized_key_is_refused(client: APIClient) -> None:
    before = balances()
    missing = client.post(URL, {"amount_u": 100}, format="json")
    assert missing.status_code == 400 and missing.json()["type"] == "idempotency/key-required"
    long = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256)
    assert long.status_code == 400 and long.json()["type"] == "idempotency/key-invalid"
    assert balances() == before


@pytest.mark.django_db
def test_refusal_is_stored_and_replayed(client: APIClient) -> None:
    refused = client.post(URL, {"amount_u": 5_000}, format="json", HTTP_IDEMPOTENCY_KEY="big")
    assert refused.status_code == 422 and refused.json()["type"] == "ledger/insufficient-funds"
    again = client.post(URL, {"amount_u": 5_000}, format="json", HTTP_IDEMPOTENCY_KEY="big")
    assert again.status_code == 422 and again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"] == "application/problem+json"


@pytest.mark.django_db
def test_transient_failure_rolls_back_and_releases_the_key(client: APIClient) -> None:
    before = balances()
    failed = client.post(URL, {"amount_u": 100, "fail": True}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
    assert failed.status_code == 503
    assert balances() == before, "the transfer inside the failed request must roll back"
    assert not IdempotencyKey.objects.filter(key="t1").exists()
    retried = client.post(URL, {"amount_u": 100, "fail": True}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
    assert retried.status_code == 503 and "Idempotent-Replayed" not in retried


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_move_money_once(player: Any, fund: Any) -> None:
    fund(player, 1_000)
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        client = token_client(player)
        barrier.wait()
        try:
            statuses.append(client.post(URL, {"amount_u": 10}, format="json", HTTP_IDEMPOTENCY_KEY="race").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(statuses)) <= [201, 409]
    assert statuses.count(201) >= 1
    assert Journal.objects.filter(type="fee").count() == 1
    assert Account.objects.get(name="house", currency="USDC").balance_u == 10


@pytest.mark.django_db(transaction=True)
def test_non_atomic_handler_runs_with_no_transaction_open_and_still_replays(player: Any) -> None:
    client = token_client(player)
    first = client.post("/test/outside-call", {}, format="json", HTTP_IDEMPOTENCY_KEY="o1")
    assert first.status_code == 201 and first.json() == {"in_transaction": False}
    again = client.post("/test/outside-call", {}, format="json", HTTP_IDEMPOTENCY_KEY="o1")
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert client.post(URL, {"amount_u": 1}, format="json").status_code == 400  # the atomic view still needs a key


@pytest.mark.django_db
def test_a_body_with_no_canonical_json_form_is_a_400_problem_and_runs_nothing(client: APIClient) -> None:
    before = balances()
    response = client.post(URL, {"amount_u": 2**53}, format="json", HTTP_IDEMPOTENCY_KEY="huge")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "idempotency/body-invalid"
    assert balances() == before
    assert not IdempotencyKey.objects.filter(key="huge").exists()


@pytest.mark.parametrize("data", [{"amount_u": Decimal("1.5")}, {1: "non-string key"}, {"nested": [{2: 3}]}])
def test_a_parsed_body_that_cannot_be_canonicalised_is_refused_not_a_500(data: Any) -> None:
    from ops.idempotency import IdempotencyBodyInvalid, request_fingerprint

    request = SimpleNamespace(data=data)
    with pytest.raises(IdempotencyBodyInvalid) as refused:
        request_fingerprint(request, "POST /test/pay-house")  # type: ignore[arg-type]
    assert refused.value.status == 400 and refused.value.problem()["type"] == "idempotency/body-invalid"


def test_the_fingerprint_ignores_key_order_and_depends_on_scope() -> None:
    from ops.idempotency import request_fingerprint

    one = request_fingerprint(SimpleNamespace(data={"a": 1, "b": [1.5, "x"]}), "POST /x")  # type: ignore[arg-type]
    two = request_fingerprint(SimpleNamespace(data={"b": [1.5, "x"], "a": 1}), "POST /x")  # type: ignore[arg-type]
    other = request_fingerprint(SimpleNamespace(data={"a": 1, "b": [1.5, "x"]}), "POST /y")  # type: ignore[arg-type]
    assert one == two != other


@pytest.mark.django_db
def test_a_key_stored_under_the_pre_rfc8785_fingerprint_still_replays(client: APIClient) -> None:
    """A retry across the deploy that changed the hash function replays; it is not a 'different request'."""
    from ops.idempotency import legacy_request_fingerprint

    first = client.post(URL, {"amount_u": 100, "note": 1.0}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert first.status_code == 201
    row = IdempotencyKey.objects.get(key="old")
    legacy = legacy_request_fingerprint(SimpleNamespace(data={"amount_u": 100, "note": 1.0}), row.scope)  # type: ignore[arg-type]
    assert legacy != row.request_hash  # the two functions disagree on this body (1.0 vs 1)
    IdempotencyKey.objects.filter(pk=row.pk).update(request_hash=legacy)
    before = balances()
    again = client.post(URL, {"amount_u": 100, "note": 1.0}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = client.post(URL, {"amount_u": 101, "note": 1.0}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert other.status_code == 422 and other.json()["type"] == "idempotency/key-reused"
    assert balances() == before
