"""Receiving verified webhook events: store each once per (provider, event id), credit or hand to the worker.

A view verifies the signature on the raw body (`webhooks.verification`), then a `*_receive` service
here stores the raw event and, after commit, processes it (`webhooks.processing`). A second
delivery of the same event returns the stored row (`duplicate`); a custody reference sent again with
another payload is refused (409).

Deposits credited in the request. A confirmation (a custody deposit, a Stripe payment succeeded, an
Adyen authorisation) is credited right after the store commits, still in the request, by
`webhook_event_credit_now`: the worker's own core, in a second short transaction that takes no lock
it would have to wait for. Every other event, and a confirmation that is not plain (its deposit or
event row locked by a worker, no known deposit, anything the worker would flag, any error), is
enqueued exactly as before. Why a second transaction rather than the store's own:

* the store commits first and alone, so the PSP's 2xx always stands for a durable event, whatever
  the credit does (a credit that fails at its commit, e.g. on a deferred constraint, cannot take the
  stored event down with it and make the PSP retry forever);
* the credit runs in exactly the transaction the worker runs (same locks, same red-line scope, same
  deferred checks at its own commit), not as a savepoint inside another transaction;
* a duplicate delivery waits on the event's unique index only for the short store, not for a credit.

The cost is a second commit, and a window between the two in which the event is stored, not yet
credited and not enqueued: if the process dies there, the sweeper (`retry_stale_events`, after
WEBHOOK_STALE_AFTER_S) enqueues it, as when the broker is down at commit. The answer to the PSP does
not change: same status code and body (its `status` is the event's status as stored, `received`).
WEBHOOK_CREDIT_IN_REQUEST off restores the queue for every event.

The payload hash is RFC 8785 (`ops.canonical`); before, it was a sorted `json.dumps`. Only custody and
simulated deposits compare hashes, and their payloads (four fixed ASCII keys, string and integer values,
checked before the hash) have the same bytes under both, so an event stored before the change and
retried after it still matches (`test_receiving.py` pins this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ops.canonical import CanonicalJsonError, canonical_sha256
from ops.tracing import flow_bind

from .errors import InvalidAmount, InvalidPayload, MalformedPayload, ReferenceMismatch
from .fields import checked_amount_u, checked_currency, checked_player
from .models import Deposit, Provider, WebhookEvent
from .notices import Kind, Notice, adyen_event_id, adyen_notice, event_reference, stripe_notice
from .processing import webhook_event_credit_now
from .selectors import deposit_matching

MAX_REFERENCE_LENGTH = 150
SIGNED_DEPOSIT_PROVIDERS = (Provider.CUSTODY, Provider.SIMULATION)
KEPT_HEADERS = ("Content-Type", "User-Agent", "Stripe-Signature", "X-Webhook-Signature", "X-Forwarded-For")


def payload_hash(payload: Any) -> str:
    """SHA-256 of the RFC 8785 canonical JSON of a payload (key order and spacing do not matter).

    A payload with no canonical form (NaN, an integer beyond 2**53, a lone surrogate) is refused
    with a 400, before anything is stored.
    """
    try:
        return canonical_sha256(payload, floats=True)
    except CanonicalJsonError as exc:
        raise MalformedPayload(f"The payload has no canonical JSON form ({exc}); nothing was stored.") from None


def selected_headers(headers: Any) -> dict[str, str]:
    """Keep the few request headers worth storing with an event."""
    return {name: str(headers[name])[:500] for name in KEPT_HEADERS if name in headers}


def _send_to_worker(event_id: int) -> None:
    from .tasks import process_webhook_event

    process_webhook_event.delay(event_id)


def _credit_now_or_send(event_id: int) -> None:
    """Credit a plain confirmation now (the store has committed); else hand it to the worker."""
    if not webhook_event_credit_now(event_id=event_id):
        _send_to_worker(event_id)


def _enqueue(event_id: int, *, credit_now: bool = False) -> None:
    """Once the transaction that stored the event commits, credit it now if it is plain, else hand it to the worker.

    If the broker is down the event stays `received`, and `retry_stale_events` picks it up later.
    """
    # Plain functions, not functools.partial: Django logs a failed robust callback by its __qualname__.
    if credit_now and settings.WEBHOOK_CREDIT_IN_REQUEST:
        transaction.on_commit(lambda: _credit_now_or_send(event_id), robust=True)
    else:
        transaction.on_commit(lambda: _send_to_worker(event_id), robust=True)


def _join_deposit_flow(notice: Notice) -> None:
    """Bind the flow of the deposit a PSP event is about, when we know it, before the event is queued."""
    if notice.kind == Kind.IGNORE:
        return
    flow_id = deposit_matching(
        notice, Deposit.objects.filter(provider=notice.provider).values_list("flow_id", flat=True)
    )
    if flow_id:
        flow_bind(flow_id)


@dataclass(frozen=True)
class Received:
    """A stored event, and whether this delivery was a duplicate of one stored before.

    `event` is the row as this delivery stored (or found) it: a confirmation credited in the request
    after the commit still reads `received` here, which is the status the PSP's answer carries.
    """

    event: WebhookEvent
    duplicate: bool


def _store(
    *,
    provider: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    raw_body: bytes = b"",
    status: str = WebhookEvent.Status.RECEIVED,
    reason: str = "",
    enqueue: bool = True,
    credit_now: bool = False,
    deposit_fields: dict[str, Any] | None = None,
) -> Received:
    """Insert the event once per (provider, event id); a later delivery returns the stored row.

    `credit_now`: the event is a confirmation, to be credited in the request after commit if it is plain.
    """
    digest = payload_hash(payload)
    try:
        with transaction.atomic():
            deposit = Deposit.objects.create(provider=provider, **deposit_fields) if deposit_fields else None
            event = WebhookEvent.objects.create(
                provider=provider,
                event_id=event_id[:200],
                event_type=event_type[:100],
                reference=event_reference(provider, payload)[:200],
                payload_hash=digest,
                payload=payload,
                raw_body=raw_body.decode("utf-8", "replace"),
                headers=headers,
                status=status,
                reason=reason,
                deposit=deposit,
                processed_at=timezone.now() if status != WebhookEvent.Status.RECEIVED else None,
            )
            if enqueue and status == WebhookEvent.Status.RECEIVED:
                _enqueue(event.pk, credit_now=credit_now)
    except IntegrityError:
        existing = WebhookEvent.objects.filter(provider=provider, event_id=event_id[:200]).first()
        if existing is None:
            raise
        if provider in SIGNED_DEPOSIT_PROVIDERS and existing.payload_hash != digest:
            raise ReferenceMismatch(
                f"Reference {event_id!r} was already received with a different payload; nothing was credited. "
                "Retry only with the same payload for the same reference.",
                extra={"reference": event_id},
            ) from None
        return Received(existing, duplicate=True)
    return Received(event, duplicate=False)


def stripe_event_receive(*, event: dict[str, Any], headers: dict[str, str], raw_body: bytes = b"") -> Received:
    """Store a verified Stripe event; a type we do not handle is stored as ignored."""
    notice = stripe_notice(event)
    ignored = notice.kind == Kind.IGNORE
    _join_deposit_flow(notice)
    return _store(
        provider=Provider.STRIPE,
        event_id=event["id"],
        event_type=str(event.get("type", "")),
        payload=event,
        headers=headers,
        raw_body=raw_body,
        status=WebhookEvent.Status.IGNORED if ignored else WebhookEvent.Status.RECEIVED,
        reason=notice.note if ignored else "",
        credit_now=notice.kind == Kind.CREDIT,
    )


def adyen_notification_receive(
    *, items: list[dict[str, Any]], headers: dict[str, str], raw_body: bytes = b""
) -> list[Received]:
    """Store each verified Adyen notification item as its own event, all in one transaction."""
    received = []
    with transaction.atomic():
        for item in items:
            notice = adyen_notice(item)
            ignored = notice.kind == Kind.IGNORE
            _join_deposit_flow(notice)
            received.append(
                _store(
                    provider=Provider.ADYEN,
                    event_id=adyen_event_id(item),
                    event_type=str(item.get("eventCode", "")),
                    payload=item,
                    headers=headers,
                    raw_body=raw_body,
                    status=WebhookEvent.Status.IGNORED if ignored else WebhookEvent.Status.RECEIVED,
                    reason=notice.note if ignored else "",
                    credit_now=notice.kind == Kind.CREDIT,
                )
            )
    return received


@dataclass(frozen=True)
class SignedDeposit:
    """A validated custody (or simulated) deposit."""

    reference: str
    user: Any
    amount_u: int
    currency: str


def signed_deposit_validate(payload: dict[str, Any]) -> SignedDeposit:
    """Check a custody deposit's fields: reference, player, positive integer amount, known currency."""
    unknown = sorted(set(payload) - {"reference", "user_id", "amount_u", "currency"})
    if unknown:
        raise InvalidPayload(f"Unexpected fields: {', '.join(unknown)}.")
    reference = payload.get("reference")
    if not isinstance(reference, str) or not reference.strip() or len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidPayload(f"reference must be a string of 1 to {MAX_REFERENCE_LENGTH} characters.")
    if "amount_u" not in payload:
        raise InvalidAmount("amount_u is required.")
    amount_u = checked_amount_u(payload["amount_u"])
    currency = checked_currency(payload.get("currency"))
    user = checked_player(payload.get("user_id"))
    return SignedDeposit(reference=reference, user=user, amount_u=amount_u, currency=currency)


def signed_deposit_receive(
    *, provider: str, payload: dict[str, Any], headers: dict[str, str], raw_body: bytes = b"", enqueue: bool = True
) -> Received:
    """Store a custody deposit and its pending Deposit; the same reference with another payload is a 409."""
    deposit = signed_deposit_validate(payload)
    return _store(
        provider=provider,
        event_id=deposit.reference,
        event_type="deposit",
        payload=payload,
        headers=headers,
        raw_body=raw_body,
        enqueue=enqueue,
        credit_now=True,
        deposit_fields={
            "reference": deposit.reference,
            "user": deposit.user,
            "amount_u": deposit.amount_u,
            "currency": deposit.currency,
        },
    )
