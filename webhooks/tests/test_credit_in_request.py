"""Deposits credited in the request: a plain confirmation is credited before the PSP's answer returns, once;
everything else (and a plain one whose rows are locked, or whose processing raises) waits for the worker as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client

from ledger.models import Journal
from ops.models import AuditRecord, WorkerRun
from webhooks import processing
from webhooks.models import Deposit, WebhookEvent
from webhooks.notices import Kind
from webhooks.processing import webhook_event_credit_now, webhook_event_process
from webhooks.stub import SignedWebhook

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
    refund_charge,
    snapshot,
    stripe_delivery,
)

pytestmark = pytest.mark.django_db


def _post(client: Any, url: str, webhook: SignedWebhook) -> Any:
    headers = {k: v for k, v in webhook.headers.items() if k.lower() != "content-type"}
    return client.post(url, data=webhook.body, content_type=webhook.headers.get("Content-Type", ""), headers=headers)


@pytest.fixture
def row_lock() -> Iterator[Callable[[Any], None]]:
    """row_lock(queryset): another connection (a worker, say) holds FOR UPDATE on its rows until the test ends."""
    held = threading.Event()
    release = threading.Event()
    threads: list[threading.Thread] = []

    def hold(queryset: Any) -> None:
        def run() -> None:
            try:
                with transaction.atomic():
                    list(queryset.select_for_update())
                    held.set()
                    release.wait(30)
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
        assert held.wait(10), "the lock was not taken"

    yield hold
    release.set()
    for thread in threads:
        thread.join(30)


# --- Credited in the request ------------------------------------------------------------------------


def test_custody_deposit_is_credited_when_the_answer_returns(
    player: Any, deliver: Any, enqueued: list[int], assert_ledger_ok: Any
) -> None:
    payload = custody_payload(player, amount_u=5_000_000, reference="tx-now-1")

    response = deliver(CUSTODY_URL, custody_delivery(payload))

    # The PSP's answer is unchanged: 202, and the event's status as stored.
    assert response.status_code == 202
    assert response.json() == {"received": True, "duplicate": False, "reference": "tx-now-1", "status": "received"}
    assert enqueued == []  # no worker involved
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.last_error) == ("processed", 1, "")
    assert event.journal_reference == "deposit:custody:tx-now-1"
    deposit = Deposit.objects.get()
    assert deposit.status == Deposit.Status.CREDITED and deposit.journal is not None
    assert deposit.journal.reference == "deposit:custody:tx-now-1"
    assert event.deposit == deposit
    assert Journal.objects.filter(type="deposit").count() == 1
    assert available(player, "USDC") == 5_000_000
    audit = AuditRecord.objects.get(action="deposits.credit")
    assert (audit.actor_label, audit.from_state, audit.to_state) == ("webhook:custody", "pending", "credited")
    assert audit.correlation_id == response["X-Request-ID"]  # the webhook's own request
    assert not WorkerRun.objects.filter(worker="webhooks").exists()
    assert_ledger_ok()

    again = deliver(CUSTODY_URL, custody_delivery(payload))

    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True, "reference": "tx-now-1", "status": "processed"}
    assert Journal.objects.filter(type="deposit").count() == 1 and enqueued == []


def test_stripe_confirmations_are_credited_in_the_request_once(
    player: Any, deliver: Any, enqueued: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player)
    session = {
        "id": "cs_now_1",
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": 2500,
        "currency": "usd",
        "payment_intent": deposit.psp_id,
        "metadata": {"deposit_reference": deposit.reference},
    }

    first = deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])
    second = deliver(STRIPE_URL, stripe_delivery("checkout.session.completed", session)[1])

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"received": True, "duplicate": False, "status": "received"}
    assert enqueued == []
    credited, already = WebhookEvent.objects.order_by("id")
    assert (credited.status, already.status) == ("processed", "processed")
    assert already.reason.startswith("Already credited")
    assert Journal.objects.filter(type="deposit").count() == 1 and available(player, "USD") == 2500
    assert_ledger_ok()


def test_adyen_authorisation_is_credited_now_and_a_refund_in_the_same_batch_waits_for_the_worker(
    player: Any, deliver: Any, enqueued: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR", amount_u=5000)
    auth = adyen_item(deposit)
    refund = adyen_item(deposit, event_code="REFUND", value=1000, original_reference=auth["pspReference"])

    response = deliver(ADYEN_URL, adyen_delivery(auth, refund))

    assert (response.status_code, response.content) == (200, b"[accepted]")
    credited = WebhookEvent.objects.get(event_type="AUTHORISATION")
    waiting = WebhookEvent.objects.get(event_type="REFUND")
    assert credited.status == "processed" and available(player, "EUR") == 5000
    assert waiting.status == "received" and enqueued == [waiting.pk]
    assert_ledger_ok()


def test_crediting_in_the_request_can_be_turned_off(
    player: Any, deliver: Any, enqueued: list[int], settings: Any
) -> None:
    settings.WEBHOOK_CREDIT_IN_REQUEST = False

    deliver(CUSTODY_URL, custody_delivery(custody_payload(player)))

    event = WebhookEvent.objects.get()
    assert (event.status, enqueued) == ("received", [event.pk])
    assert Journal.objects.count() == 0


# --- Everything else goes through the queue, as before ----------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["unknown deposit", "other amount", "failed deposit", "refund", "canceled", "dispute closed"],
)
def test_events_that_are_not_plain_confirmations_wait_for_the_worker(
    player: Any, deliver: Any, enqueued: list[int], case: str
) -> None:
    deposit = pending_deposit(player)
    if case == "unknown deposit":
        ghost = Deposit(provider="stripe", reference="nope", user=player, amount_u=2500, currency="USD", psp_id="pi_x")
        delivery = stripe_delivery("payment_intent.succeeded", payment_intent(ghost))[1]
    elif case == "other amount":
        delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit, amount_received=2499))[1]
    elif case == "failed deposit":
        Deposit.objects.filter(pk=deposit.pk).update(status=Deposit.Status.FAILED, failure_reason="declined")
        delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1]
    elif case == "refund":
        delivery = stripe_delivery("charge.refunded", refund_charge(deposit, amount_refunded=2500))[1]
    elif case == "canceled":
        delivery = stripe_delivery("payment_intent.canceled", payment_intent(deposit, status="canceled"))[1]
    else:
        dispute = {"id": "dp_9", "object": "dispute", "amount": 2500, "currency": "usd", "payment_intent": "pi_x"}
        delivery = stripe_delivery("charge.dispute.closed", dispute)[1]
    before = Deposit.objects.values_list("status", "failure_reason").get(pk=deposit.pk)

    response = deliver(STRIPE_URL, delivery)

    assert response.json() == {"received": True, "duplicate": False, "status": "received"}
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.reason) == ("received", 0, "")
    assert enqueued == [event.pk]
    assert Deposit.objects.values_list("status", "failure_reason").get(pk=deposit.pk) == before
    assert Journal.objects.count() == 0 and not AuditRecord.objects.filter(action__startswith="deposits.").exists()


def test_processing_that_raises_in_the_request_leaves_no_money_and_goes_to_the_worker(
    player: Any, deliver: Any, enqueued: list[int], monkeypatch: pytest.MonkeyPatch, assert_ledger_ok: Any
) -> None:
    real_credit = processing._HANDLERS[Kind.CREDIT]
    raised: list[int] = []

    def credit_then_fail_once(notice: Any, event: Any) -> Any:
        outcome = real_credit(notice, event)  # the journal is posted...
        if not raised:
            raised.append(event.pk)
            raise RuntimeError("after the ledger moved")  # ...and everything this transaction did is undone
        return outcome

    monkeypatch.setitem(processing._HANDLERS, Kind.CREDIT, credit_then_fail_once)

    response = deliver(CUSTODY_URL, custody_delivery(custody_payload(player, amount_u=3_000_000)))

    assert response.status_code == 202 and response.json()["status"] == "received"
    event = WebhookEvent.objects.get()
    assert raised == [event.pk] and enqueued == [event.pk]
    assert (event.status, event.attempts, event.last_error) == ("received", 0, "")  # not counted as an attempt
    assert Deposit.objects.get().status == Deposit.Status.PENDING
    assert Journal.objects.count() == 0 and available(player, "USDC") == 0
    assert not AuditRecord.objects.filter(action="deposits.credit").exists()

    assert webhook_event_process(event_id=event.pk).status == "processed"  # the worker's turn

    assert Journal.objects.filter(type="deposit").count() == 1 and available(player, "USDC") == 3_000_000
    assert AuditRecord.objects.filter(action="deposits.credit").count() == 1
    assert_ledger_ok()


@pytest.mark.django_db(transaction=True)
def test_a_locked_deposit_row_goes_to_the_worker_without_waiting(
    player: Any, client: Any, enqueued: list[int], row_lock: Any, assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player)
    row_lock(Deposit.objects.filter(pk=deposit.pk))  # a worker is on it (held for up to 30 s)

    started = time.monotonic()
    response = _post(client, STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False, "status": "received"}
    assert elapsed < 5  # did not wait for the lock
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, enqueued) == ("received", 0, [event.pk])
    assert Journal.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_locked_event_row_is_left_to_whoever_holds_it(
    player: Any, client: Any, enqueued: list[int], row_lock: Any, settings: Any, assert_ledger_ok: Any
) -> None:
    settings.WEBHOOK_CREDIT_IN_REQUEST = False
    deposit = pending_deposit(player)
    _post(client, STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])
    event = WebhookEvent.objects.get()
    row_lock(WebhookEvent.objects.filter(pk=event.pk))

    started = time.monotonic()
    assert webhook_event_credit_now(event_id=event.pk) is False
    assert time.monotonic() - started < 5
    assert WebhookEvent.objects.get().status == "received" and Journal.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_credit_now_after_the_worker_is_a_no_op(player: Any, client: Any, enqueued: list[int], settings: Any) -> None:
    settings.WEBHOOK_CREDIT_IN_REQUEST = False
    deposit = pending_deposit(player)
    _post(client, STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])
    event = WebhookEvent.objects.get()

    assert webhook_event_process(event_id=event.pk).status == "processed"
    before = snapshot()

    assert webhook_event_credit_now(event_id=event.pk) is True  # done already: nothing to enqueue
    assert webhook_event_process(event_id=event.pk).status == "processed"
    assert snapshot() == before and Journal.objects.filter(type="deposit").count() == 1


# --- Duplicate storms, in-process, on PostgreSQL ----------------------------------------------------


def _storm(url: str, deliveries: list[SignedWebhook]) -> list[int]:
    """POST every delivery from its own thread (its own connection), all released at once."""
    barrier = threading.Barrier(len(deliveries))
    statuses = [0] * len(deliveries)

    def send(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            statuses[index] = _post(Client(), url, deliveries[index]).status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(deliveries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return statuses


STORM = 20


@pytest.mark.django_db(transaction=True)
def test_custody_duplicate_storm_credits_once_in_the_request(
    player: Any, enqueued: list[int], assert_ledger_ok: Any
) -> None:
    delivery = custody_delivery(custody_payload(player, amount_u=7_000_000, reference="tx-storm-now"))

    statuses = _storm(CUSTODY_URL, [delivery] * STORM)

    assert sorted(statuses) == [200] * (STORM - 1) + [202]
    assert enqueued == []  # the one stored delivery was credited in its request; duplicates send nothing
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert Journal.objects.filter(reference="deposit:custody:tx-storm-now").count() == 1
    assert available(player, "USDC") == 7_000_000
    assert_ledger_ok()


@pytest.mark.django_db(transaction=True)
def test_stripe_storm_of_two_events_for_one_payment_credits_once(
    player: Any, enqueued: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player, amount_u=4200)
    session = {
        "id": "cs_storm_now",
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": 4200,
        "currency": "usd",
        "payment_intent": deposit.psp_id,
        "metadata": {"deposit_reference": deposit.reference},
    }
    _, succeeded = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))
    _, completed = stripe_delivery("checkout.session.completed", session)

    statuses = _storm(STRIPE_URL, [succeeded, completed] * (STORM // 2))

    assert statuses == [200] * STORM
    assert WebhookEvent.objects.count() == 2
    # One event may have found the deposit locked by the other's request: that one went to the worker.
    waiting = set(WebhookEvent.objects.filter(status="received").values_list("pk", flat=True))
    assert waiting <= set(enqueued) and len(enqueued) == len(set(enqueued))
    assert Journal.objects.filter(type="deposit").count() == 1 and available(player, "USD") == 4200
    for event_id in enqueued:  # the worker's turn
        webhook_event_process(event_id=event_id)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Journal.objects.filter(type="deposit").count() == 1 and available(player, "USD") == 4200
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.CREDITED
    assert_ledger_ok()
