"""A duplicate storm: one confirmation POSTed 50 times at once over real HTTP to a live server, processed
by a real Celery worker on Redis, on PostgreSQL, gives exactly one credit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.conf import settings
from django.core.servers.basehttp import ThreadedWSGIServer

from ledger.models import Journal
from webhooks.models import Deposit, WebhookEvent
from webhooks.stub import SignedWebhook, post_webhook

from .helpers import (
    ADYEN_URL,
    CUSTODY_URL,
    STRIPE_URL,
    adyen_delivery,
    adyen_item,
    available,
    custody_delivery,
    custody_payload,
    payment_intent,
    pending_deposit,
    stripe_delivery,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
STORM = 50

# The live server's listen backlog is 10 by default, so 50 simultaneous connects would be reset by the
# kernel before Django sees them. A PSP's load balancer queues them; give the test server a real backlog.
# (live_server is session-scoped: this must run at import, before it starts.)
ThreadedWSGIServer.request_queue_size = 128


def storm(url: str, deliveries: list[SignedWebhook]) -> list[int]:
    """POST every delivery from its own thread, all released at once; return the status codes."""
    barrier = threading.Barrier(len(deliveries))
    statuses: list[int] = [0] * len(deliveries)

    def send(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            statuses[index] = post_webhook(url, deliveries[index], timeout=60).status_code
        except requests.RequestException:
            statuses[index] = -1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(deliveries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return statuses


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "webhook processing did not finish in time"
        time.sleep(0.1)


def _settled() -> bool:
    return not WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED).exists()


def test_custody_storm_credits_once(
    live_server: Any, celery_worker_on_redis: Any, player: Any, assert_ledger_ok: Any
) -> None:
    delivery = custody_delivery(custody_payload(player, amount_u=9_000_000, reference="tx-storm-1"))

    statuses = storm(f"{live_server.url}{CUSTODY_URL}", [delivery] * STORM)

    assert sorted(statuses) == [200] * (STORM - 1) + [202]
    wait_until(_settled)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert Journal.objects.filter(reference="deposit:custody:tx-storm-1").count() == 1
    assert available(player, "USDC") == 9_000_000
    assert_ledger_ok()


def test_stripe_storm_of_two_events_for_one_payment_credits_once(
    live_server: Any, celery_worker_on_redis: Any, player: Any, assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player, amount_u=4200)
    session = {
        "id": "cs_storm",
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": 4200,
        "currency": "usd",
        "payment_intent": deposit.psp_id,
        "metadata": {"deposit_reference": deposit.reference},
    }
    _, succeeded = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    _, completed = stripe_delivery("checkout.session.completed", session)

    statuses = storm(f"{live_server.url}{STRIPE_URL}", [succeeded, completed] * (STORM // 2))

    assert statuses == [200] * STORM
    wait_until(_settled)
    assert WebhookEvent.objects.count() == 2
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Journal.objects.filter(type="deposit").count() == 1
    assert available(player, "USD") == 4200
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.CREDITED
    assert_ledger_ok()


def test_adyen_storm_credits_once(
    live_server: Any, celery_worker_on_redis: Any, player: Any, assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR", amount_u=1130)
    delivery = adyen_delivery(adyen_item(deposit, hmac_key=settings.ADYEN_HMAC_KEY))

    statuses = storm(f"{live_server.url}{ADYEN_URL}", [delivery] * STORM)

    assert statuses == [200] * STORM
    wait_until(_settled)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert Journal.objects.filter(type="deposit").count() == 1
    assert available(player, "EUR") == 1130
    assert_ledger_ok()
