"""Factories for deposits and the PSP events about them, in each state, through the services.

`DepositFactory.create()` is a Stripe deposit of 25.00 USD as `POST /v1/deposits` leaves it: `pending`,
with the PSP's payment intent id (the row `deposit_start` writes before it calls the PSP; no money
moves). The traits that carry money go through the webhook services, as the PSP's confirmation would:
the event is stored by `stripe_event_receive` and processed by `webhook_event_process`, so a credited
deposit has its `deposit:stripe:<payment>` journal and a refunded one its refund journal.

`WebhookEventFactory.create()` is a stored `received` event confirming a new pending deposit; its traits
are the other outcomes of processing: `processed` (credited), `flagged` (a confirmed amount that does
not match: nothing credited), `ignored` (a type we do not handle) and `failed` (retries exhausted).

Stored events are handed to the worker after commit: inside a test's transaction that never happens.
"""

from __future__ import annotations

import uuid
from typing import Any

import factory

from accounts.tests.factories import UserFactory
from webhooks.models import Deposit, Provider, WebhookEvent
from webhooks.processing import webhook_event_process, webhook_event_record_error
from webhooks.receiving import stripe_event_receive
from webhooks.stub import stripe_event
from webhooks.tests.helpers import payment_intent, refund_charge

Status = Deposit.Status
EventStatus = WebhookEvent.Status


def stripe_event_deliver(event_type: str, obj: dict[str, Any]) -> WebhookEvent:
    """Store a (verified) Stripe event through the service, as the webhook view does, and return it."""
    return stripe_event_receive(event=stripe_event(event_type, obj), headers={}).event


def webhook_event_run(event: WebhookEvent) -> WebhookEvent:
    """Process a stored event as the worker does."""
    return webhook_event_process(event_id=event.pk)


class DepositFactory(factory.django.DjangoModelFactory[Deposit]):
    class Meta:
        model = Deposit

    class Params:
        credited = factory.Trait(state=Status.CREDITED)
        failed = factory.Trait(state=Status.FAILED)
        refunded = factory.Trait(state="refunded")

    provider = Provider.STRIPE
    reference = factory.LazyFunction(lambda: str(uuid.uuid4()))
    user = factory.SubFactory(UserFactory)
    amount_u = 2500
    currency = "USD"
    psp_id = factory.LazyFunction(lambda: f"pi_{uuid.uuid4().hex[:24]}")
    # Not a field the factory sets: how far the PSP's events take the deposit ("refunded": credited, then
    # refunded in full).
    state = Status.PENDING

    @classmethod
    def _create(cls, model_class: type[Deposit], *args: Any, state: str, **kwargs: Any) -> Deposit:
        if set(kwargs) - {"provider", "reference", "user", "amount_u", "currency", "psp_id"}:
            raise TypeError("DepositFactory sets what deposit_start sets; the services set the rest.")
        if state != Status.PENDING and kwargs["provider"] != Provider.STRIPE:
            raise TypeError("DepositFactory drives Stripe deposits only (provider='stripe').")
        deposit: Deposit = super()._create(model_class, *args, **kwargs)
        if state in (Status.CREDITED, "refunded"):
            webhook_event_run(stripe_event_deliver("payment_intent.succeeded", payment_intent(deposit)))
        if state == "refunded":
            webhook_event_run(
                stripe_event_deliver("charge.refunded", refund_charge(deposit, amount_refunded=deposit.amount_u))
            )
        if state == Status.FAILED:
            webhook_event_run(
                stripe_event_deliver("payment_intent.canceled", payment_intent(deposit, status="canceled"))
            )
        deposit.refresh_from_db()
        wanted = Status.CREDITED if state == "refunded" else state
        if deposit.status != wanted:
            raise AssertionError(f"DepositFactory wanted {state}; the services left {deposit}.")
        return deposit


class WebhookEventFactory(factory.django.DjangoModelFactory[WebhookEvent]):
    class Meta:
        model = WebhookEvent

    class Params:
        processed = factory.Trait(state=EventStatus.PROCESSED)
        flagged = factory.Trait(state=EventStatus.FLAGGED)
        ignored = factory.Trait(state=EventStatus.IGNORED)
        failed = factory.Trait(state=EventStatus.FAILED)

    deposit = factory.SubFactory(DepositFactory)
    # Not a field the factory sets: the event's outcome.
    state = EventStatus.RECEIVED

    @classmethod
    def _create(
        cls, model_class: type[WebhookEvent], *args: Any, deposit: Deposit, state: str, **kwargs: Any
    ) -> WebhookEvent:
        if args or kwargs:
            raise TypeError(f"WebhookEventFactory cannot set {sorted(kwargs)}: the services store the event.")
        if state == EventStatus.IGNORED:
            event = stripe_event_deliver(
                "customer.created", {"id": f"cus_{uuid.uuid4().hex[:14]}", "object": "customer"}
            )
        elif state == EventStatus.FLAGGED:
            short = payment_intent(deposit, amount_received=deposit.amount_u - 1)
            event = webhook_event_run(stripe_event_deliver("payment_intent.succeeded", short))
        else:
            event = stripe_event_deliver("payment_intent.succeeded", payment_intent(deposit))
            if state == EventStatus.PROCESSED:
                event = webhook_event_run(event)
            elif state == EventStatus.FAILED:
                webhook_event_record_error(
                    event_id=event.pk, error=RuntimeError("factory: retries exhausted"), final=True
                )
        event.refresh_from_db()
        if event.status != state:
            raise AssertionError(
                f"WebhookEventFactory wanted {state}; the services left {event.status}: {event.reason}"
            )
        return event
