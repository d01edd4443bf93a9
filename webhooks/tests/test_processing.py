"""Processing stored events: exactly one credit per payment, flags instead of blind credits, ignored types,
failures, refunds and chargebacks that never push a balance below zero, retries with a final `failed`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from ledger.models import Journal
from ops.actors import SystemActor
from ops.models import WorkerRun
from webhooks import processing
from webhooks.models import Deposit, WebhookEvent
from webhooks.notices import Kind
from webhooks.processing import webhook_event_process, webhook_event_replay
from webhooks.stub import adyen_item_signature, adyen_notification_item
from webhooks.tasks import process_webhook_event, retry_stale_events
from webhooks.tests.factories import DepositFactory

from .helpers import (
    ADYEN_URL,
    STRIPE_URL,
    adyen_delivery,
    adyen_item,
    available,
    payment_intent,
    pending_deposit,
    refund_charge,
    snapshot,
    stripe_delivery,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def credited(player: Any, inline_worker: list[int]) -> Deposit:
    """A Stripe deposit of 25.00 USD, credited (later deliveries in the test are processed in-process)."""
    deposit = DepositFactory.create(user=player, credited=True)
    assert available(player, "USD") == 2500
    return deposit


# --- Exactly once ----------------------------------------------------------------------------------


def test_duplicate_delivery_credits_nothing_more(
    player: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player)
    _, delivery = stripe_delivery("payment_intent.succeeded", payment_intent(deposit))

    answers = [deliver(STRIPE_URL, delivery).json() for _ in range(3)]

    assert [a["duplicate"] for a in answers] == [False, True, True]
    assert available(player, "USD") == 2500
    assert WebhookEvent.objects.count() == 1 and inline_worker == []  # credited in the first request
    assert Journal.objects.filter(type="deposit", reference__startswith="deposit:stripe:").count() == 1
    assert_ledger_ok()


def test_the_task_run_twice_is_a_no_op(credited: Deposit) -> None:
    event = WebhookEvent.objects.get()
    before = snapshot()

    assert process_webhook_event.apply(args=[event.pk]).get() == "processed"
    assert process_webhook_event.apply(args=[event.pk]).get() == "processed"

    assert snapshot() == before


def test_two_events_for_one_payment_credit_once(
    player: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player)
    session = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": 2500,
        "currency": "usd",
        "payment_intent": deposit.psp_id,
        "metadata": {"deposit_reference": deposit.reference},
    }

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])
    deliver(STRIPE_URL, stripe_delivery("checkout.session.completed", session)[1])

    assert available(player, "USD") == 2500
    first, second = WebhookEvent.objects.order_by("id")
    assert (first.status, second.status) == ("processed", "processed")
    assert second.reason.startswith("Already credited")
    assert first.journal_reference == second.journal_reference == f"deposit:stripe:{deposit.psp_id}"
    assert_ledger_ok()


def test_unpaid_checkout_session_is_ignored(player: Any, deliver: Any, enqueued: list[int]) -> None:
    deposit = pending_deposit(player)
    session = {
        "id": "cs_test_2",
        "object": "checkout.session",
        "payment_status": "unpaid",
        "amount_total": 2500,
        "currency": "usd",
        "payment_intent": deposit.psp_id,
        "metadata": {},
    }

    assert deliver(STRIPE_URL, stripe_delivery("checkout.session.completed", session)[1]).status_code == 200

    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
    assert enqueued == [] and available(player, "USD") == 0


def test_unknown_event_type_is_stored_and_ignored(deliver: Any, enqueued: list[int]) -> None:
    response = deliver(STRIPE_URL, stripe_delivery("customer.created", {"id": "cus_1", "object": "customer"})[1])

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.event_type) == ("ignored", "customer.created")
    assert "not handled" in event.reason
    assert enqueued == [] and Journal.objects.count() == 0


# --- Flagged, not credited blindly -----------------------------------------------------------------


def test_confirmation_for_unknown_deposit_is_flagged(player: Any, deliver: Any, inline_worker: list[int]) -> None:
    ghost = Deposit(
        provider="stripe", reference="no-such-deposit", user=player, amount_u=2500, currency="USD", psp_id="pi_unknown"
    )

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(ghost))[1])

    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FLAGGED and "No stripe deposit" in event.reason
    assert Journal.objects.count() == 0


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"amount_received": 2499, "amount": 2499}, "Confirmed 24.99 USD"), ({"currency": "eur"}, "Confirmed 25.00 EUR")],
    ids=["amount", "currency"],
)
def test_confirmation_with_other_amount_or_currency_is_flagged(
    player: Any, deliver: Any, inline_worker: list[int], changes: dict[str, Any], words: str
) -> None:
    deposit = pending_deposit(player)

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit, **changes))[1])

    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FLAGGED and words in event.reason
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.PENDING and Journal.objects.count() == 0


def test_zero_received_is_never_read_as_the_requested_amount(
    player: Any, deliver: Any, inline_worker: list[int]
) -> None:
    deposit = pending_deposit(player)

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit, amount_received=0))[1])

    assert WebhookEvent.objects.get().status == WebhookEvent.Status.FLAGGED
    assert Journal.objects.count() == 0


def test_adyen_confirmation_for_another_merchant_account_is_flagged(
    player: Any, deliver: Any, inline_worker: list[int], settings: Any
) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR")
    item = adyen_notification_item(
        settings.ADYEN_HMAC_KEY,
        event_code="AUTHORISATION",
        psp_reference="8800000000000001",
        merchant_reference=deposit.reference,
        value=deposit.amount_u,
        currency="EUR",
        merchant_account="SomeoneElsesMerchant",
    )

    deliver(ADYEN_URL, adyen_delivery(item))

    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FLAGGED and "not ours" in event.reason
    assert Journal.objects.count() == 0


def test_confirmation_for_another_payment_intent_is_flagged(
    player: Any, deliver: Any, inline_worker: list[int]
) -> None:
    deposit = pending_deposit(player)

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit, id="pi_other"))[1])

    assert WebhookEvent.objects.get().status == WebhookEvent.Status.FLAGGED
    assert Journal.objects.count() == 0


def test_adyen_refusal_fails_the_deposit_and_a_later_success_is_flagged(
    player: Any, deliver: Any, inline_worker: list[int]
) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR")

    deliver(ADYEN_URL, adyen_delivery(adyen_item(deposit, success=False)))
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.FAILED

    deliver(ADYEN_URL, adyen_delivery(adyen_item(deposit, success=True)))

    refused, confirmed = WebhookEvent.objects.order_by("id")
    assert refused.status == WebhookEvent.Status.PROCESSED
    assert confirmed.status == WebhookEvent.Status.FLAGGED and "already failed" in confirmed.reason
    assert Journal.objects.count() == 0 and available(player, "EUR") == 0


def test_adyen_success_must_be_the_string_true(
    player: Any, deliver: Any, inline_worker: list[int], settings: Any
) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR")
    item = adyen_item(deposit)
    item["success"] = True  # a JSON boolean, re-signed: authentic, but not Adyen's "true"
    item["additionalData"]["hmacSignature"] = adyen_item_signature(item, settings.ADYEN_HMAC_KEY)

    deliver(ADYEN_URL, adyen_delivery(item))

    assert Journal.objects.count() == 0 and available(player, "EUR") == 0


def test_stripe_canceled_intent_fails_the_deposit(player: Any, deliver: Any, inline_worker: list[int]) -> None:
    deposit = pending_deposit(player)

    deliver(STRIPE_URL, stripe_delivery("payment_intent.canceled", payment_intent(deposit, status="canceled"))[1])

    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.FAILED and deposit.failure_reason == "payment intent canceled"


# --- Refunds and chargebacks -----------------------------------------------------------------------


def test_stripe_refund_debits_the_player_and_is_flagged(credited: Deposit, deliver: Any, assert_ledger_ok: Any) -> None:
    player = credited.user

    deliver(STRIPE_URL, stripe_delivery("charge.refunded", refund_charge(credited, amount_refunded=1000))[1])
    deliver(STRIPE_URL, stripe_delivery("charge.refunded", refund_charge(credited, amount_refunded=2500))[1])

    assert available(player, "USD") == 0
    first, second = WebhookEvent.objects.filter(event_type="charge.refunded").order_by("id")
    assert first.status == second.status == WebhookEvent.Status.FLAGGED
    assert "debited 10.00 USD" in first.reason and "debited 15.00 USD" in second.reason
    credited.refresh_from_db()
    assert credited.refunded_u == 2500
    assert sorted(Journal.objects.filter(type="deposit_refund").values_list("reference", flat=True)) == [
        "deposit-refund:stripe:ch_1:1000",
        "deposit-refund:stripe:ch_1:2500",
    ]
    assert_ledger_ok()


def test_refund_the_player_already_spent_is_flagged_for_manual_handling(
    credited: Deposit, deliver: Any, assert_ledger_ok: Any
) -> None:
    from ledger.services import external_account, transfer, user_account

    transfer(
        source=user_account(user=credited.user, currency="USD"),
        destination=external_account(provider="test", currency="USD"),
        amount_u=2000,
        type="test_spend",
        reference="spend-1",
        actor=SystemActor("test"),
    )
    before = snapshot()

    deliver(STRIPE_URL, stripe_delivery("charge.refunded", refund_charge(credited, amount_refunded=2500))[1])

    event = WebhookEvent.objects.get(event_type="charge.refunded")
    assert event.status == WebhookEvent.Status.FLAGGED and "MANUAL HANDLING NEEDED" in event.reason
    assert available(credited.user, "USD") == 500
    assert Journal.objects.count() == before["journals"]
    assert_ledger_ok()


def test_stripe_dispute_debits_once_even_when_replayed(credited: Deposit, deliver: Any, assert_ledger_ok: Any) -> None:
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 2500,
        "currency": "usd",
        "charge": "ch_1",
        "payment_intent": credited.psp_id,
        "reason": "fraudulent",
    }

    deliver(STRIPE_URL, stripe_delivery("charge.dispute.created", dispute)[1])
    event = WebhookEvent.objects.get(event_type="charge.dispute.created")

    webhook_event_replay(event_id=event.pk, acting_user=SystemActor("cli:test"))

    assert available(credited.user, "USD") == 0
    assert Journal.objects.filter(type="deposit_chargeback").count() == 1
    credited.refresh_from_db()
    assert credited.charged_back_u == 2500
    assert_ledger_ok()


def test_adyen_refund_and_chargeback(
    player: Any, deliver: Any, inline_worker: list[int], assert_ledger_ok: Any
) -> None:
    deposit = pending_deposit(player, provider="adyen", currency="EUR", amount_u=5000)
    auth = adyen_item(deposit)
    deliver(ADYEN_URL, adyen_delivery(auth))
    assert available(player, "EUR") == 5000

    deliver(
        ADYEN_URL,
        adyen_delivery(
            adyen_item(deposit, event_code="REFUND", value=1000, original_reference=auth["pspReference"]),
            adyen_item(deposit, event_code="CHARGEBACK", value=4000, original_reference=auth["pspReference"]),
        ),
    )

    assert available(player, "EUR") == 0
    assert set(WebhookEvent.objects.exclude(event_type="AUTHORISATION").values_list("status", flat=True)) == {"flagged"}
    assert Journal.objects.filter(type__in=["deposit_refund", "deposit_chargeback"]).count() == 2
    assert_ledger_ok()


def test_refunds_and_chargebacks_never_debit_more_than_the_deposit(
    player: Any, deliver: Any, inline_worker: list[int], fund: Any, assert_ledger_ok: Any
) -> None:
    """A full refund then a full chargeback of the same payment: the second moves nothing and is flagged."""
    deposit = pending_deposit(player, provider="adyen", currency="EUR", amount_u=5000)
    auth = adyen_item(deposit)
    deliver(ADYEN_URL, adyen_delivery(auth))
    fund(player, 10_000, currency="EUR")  # other money the player holds must not be taken
    deliver(
        ADYEN_URL,
        adyen_delivery(adyen_item(deposit, event_code="REFUND", value=5000, original_reference=auth["pspReference"])),
    )
    assert available(player, "EUR") == 10_000
    before = snapshot()

    deliver(
        ADYEN_URL,
        adyen_delivery(
            adyen_item(deposit, event_code="CHARGEBACK", value=5000, original_reference=auth["pspReference"])
        ),
    )

    assert available(player, "EUR") == 10_000
    after = snapshot()
    assert {k: v for k, v in after.items() if k != "events"} == {k: v for k, v in before.items() if k != "events"}
    chargeback = WebhookEvent.objects.get(event_type="CHARGEBACK")
    assert chargeback.status == "flagged" and "exceeds what remains" in chargeback.reason
    assert_ledger_ok()


def test_dispute_closed_and_chargeback_reversed_are_flagged_without_moving_money(
    credited: Deposit, deliver: Any, assert_ledger_ok: Any
) -> None:
    dispute = {
        "id": "dp_2",
        "object": "dispute",
        "amount": 2500,
        "currency": "usd",
        "status": "won",
        "payment_intent": credited.psp_id,
    }
    before = snapshot()["balances"]

    deliver(STRIPE_URL, stripe_delivery("charge.dispute.closed", dispute)[1])
    deliver(ADYEN_URL, adyen_delivery(adyen_item(event_code="CHARGEBACK_REVERSED", value=2500, currency="USD")))

    flagged = WebhookEvent.objects.filter(event_type__in=["charge.dispute.closed", "CHARGEBACK_REVERSED"])
    assert sorted(flagged.values_list("status", flat=True)) == ["flagged", "flagged"]
    assert flagged.get(provider="stripe").deposit == credited
    assert snapshot()["balances"] == before
    assert_ledger_ok()


def test_refund_for_a_deposit_never_credited_moves_nothing(player: Any, deliver: Any, inline_worker: list[int]) -> None:
    deposit = pending_deposit(player)

    deliver(STRIPE_URL, stripe_delivery("charge.refunded", refund_charge(deposit, amount_refunded=2500))[1])

    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FLAGGED and "no money moved" in event.reason
    assert Journal.objects.count() == 0


# --- Failures and retries --------------------------------------------------------------------------


def test_transient_errors_are_retried_then_the_event_is_failed(
    player: Any, deliver: Any, inline_worker: list[int], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    deposit = pending_deposit(player)
    calls: list[int] = []

    def database_down(notice: Any, event: Any) -> Any:
        calls.append(event.pk)
        raise OperationalError("could not connect to server")

    monkeypatch.setitem(processing._HANDLERS, Kind.CREDIT, database_down)

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])

    event = WebhookEvent.objects.get()
    assert len(calls) == 1 + 3  # once in the request (rolled back, not an attempt), then three worker attempts
    assert (event.status, event.attempts) == ("failed", 3)
    assert "OperationalError" in event.last_error
    runs = list(WorkerRun.objects.filter(worker="webhooks").order_by("id").values_list("result", flat=True))
    assert runs == ["retry", "retry", "failed"]
    assert available(player, "USD") == 0

    monkeypatch.undo()
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    assert webhook_event_process(event_id=event.pk).status == "processed"  # the database is back
    assert available(player, "USD") == 2500


def test_an_error_that_cannot_be_recorded_still_schedules_the_retry(
    player: Any, deliver: Any, inline_worker: list[int], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """The database restarts: the handler fails and so does recording the error; the retry still comes."""
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    deposit = pending_deposit(player)
    real_credit, real_record = processing._HANDLERS[Kind.CREDIT], processing.webhook_event_record_error
    down = {"handler": 2, "record": 1}  # the first handler failure is the request's (left to the worker)

    def flaky_credit(notice: Any, event: Any) -> Any:
        if down["handler"]:
            down["handler"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_credit(notice, event)

    def flaky_record(**kwargs: Any) -> None:
        if down["record"]:
            down["record"] -= 1
            raise OperationalError("the database system is starting up")
        real_record(**kwargs)

    monkeypatch.setitem(processing._HANDLERS, Kind.CREDIT, flaky_credit)
    monkeypatch.setattr(processing, "webhook_event_record_error", flaky_record)

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])

    event = WebhookEvent.objects.get()
    assert down == {"handler": 0, "record": 0}
    assert event.status == "processed" and available(player, "USD") == 2500  # credited by the retry, once
    runs = list(WorkerRun.objects.filter(worker="webhooks").order_by("id").values_list("result", flat=True))
    assert runs == ["retry", "ok"]


def test_a_bug_marks_the_event_failed_at_once(
    player: Any, deliver: Any, inline_worker: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    deposit = pending_deposit(player)

    def broken(notice: Any, event: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setitem(processing._HANDLERS, Kind.CREDIT, broken)

    deliver(STRIPE_URL, stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])

    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("failed", 1) and "KeyError" in event.last_error
    assert WorkerRun.objects.get(worker="webhooks").result == "failed"


def test_stale_received_events_are_enqueued_again(
    player: Any, deliver: Any, enqueued: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    deposit = pending_deposit(player)
    # A refund is never processed in the request: it waits for the worker, whose message is lost here.
    deliver(STRIPE_URL, stripe_delivery("charge.refunded", refund_charge(deposit, amount_refunded=2500))[1])
    event = WebhookEvent.objects.get()
    assert (event.status, enqueued) == (WebhookEvent.Status.RECEIVED, [event.pk])
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    sent: list[int] = []
    monkeypatch.setattr(process_webhook_event, "delay", sent.append)

    assert retry_stale_events.apply().get() == 1

    assert sent == [event.pk]


@pytest.mark.django_db(transaction=True)
def test_broker_down_at_commit_still_acknowledges_and_keeps_the_event(
    player: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.exceptions import OperationalError as BrokerDown

    def broker_down(event_id: int) -> None:
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("webhooks.receiving._send_to_worker", broker_down)
    deposit = pending_deposit(player)

    def post(delivery: Any) -> Any:
        return client.post(
            STRIPE_URL,
            data=delivery.body,
            content_type="application/json",
            headers={"Stripe-Signature": delivery.headers["Stripe-Signature"]},
        )

    # A plain confirmation needs no broker: it is credited in its request.
    response = post(stripe_delivery("payment_intent.succeeded", payment_intent(deposit))[1])
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert available(player, "USD") == 2500

    # An event for the worker (a refund) is acknowledged and kept while the broker is down.
    response = post(stripe_delivery("charge.refunded", refund_charge(deposit, amount_refunded=2500))[1])

    assert response.status_code == 200
    event = WebhookEvent.objects.get(event_type="charge.refunded")
    assert event.status == WebhookEvent.Status.RECEIVED  # the sweeper (retry_stale_events) will enqueue it
    assert webhook_event_process(event_id=event.pk).status == WebhookEvent.Status.FLAGGED  # debited, for review
    assert available(player, "USD") == 0
