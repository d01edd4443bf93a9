"""Reads of the deposits app: a player's own deposits, events for operators and workers, stuck events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from ops.errors import NotFound
from ops.stuck import StuckFinding, age_limit_s, register_stuck_source

from .models import Deposit, WebhookEvent
from .notices import Notice


def deposit_list(*, user: Any) -> QuerySet[Deposit]:
    """Return the player's own deposits, newest first."""
    return Deposit.objects.filter(user=user).order_by("-id")


def deposit_get(*, user: Any, public_id: Any) -> Deposit:
    """Return one of the player's own deposits, or 404 (another player's deposit is not found either)."""
    deposit = Deposit.objects.filter(user=user, public_id=public_id).first()
    if deposit is None:
        raise NotFound("No such deposit.")
    return deposit


def webhook_events_failed() -> QuerySet[WebhookEvent]:
    """Return the events whose processing gave up after the last attempt, oldest first."""
    return WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).order_by("id")


def webhook_events_stale(*, older_than: timedelta) -> list[int]:
    """Return the ids of events still `received` after `older_than` (their message may have been lost)."""
    cutoff = timezone.now() - older_than
    return list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED, received_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:500]
    )


def webhook_event_find(*, identifier: str, provider: str | None = None) -> list[WebhookEvent]:
    """Find events by our numeric id or by the provider's event id (optionally of one provider)."""
    events = WebhookEvent.objects.all()
    if provider:
        events = events.filter(provider=provider)
    if identifier.isdigit():
        by_pk = list(events.filter(pk=int(identifier)))
        if by_pk:
            return by_pk
    return list(events.filter(event_id=identifier).order_by("id"))


def deposit_matching(notice: Notice, deposits: Any) -> Any:
    """Return the first of `deposits` a PSP notice is about: by our reference, else by the PSP's payment or object id.

    `deposits` is a queryset of one provider's deposits (locked or projected as the caller needs), so
    the same match serves the receiving path (which reads the flow id) and the processing path (which locks).
    """
    if notice.deposit_reference:
        deposit = deposits.filter(reference=notice.deposit_reference).first()
        if deposit is not None:
            return deposit
    if notice.psp_reference:
        return (
            deposits.filter(psp_payment_reference=notice.psp_reference).order_by("pk").first()
            or deposits.filter(psp_id=notice.psp_reference).order_by("pk").first()
        )
    return None


@register_stuck_source("webhook_events", order=20)
def stuck_webhook_events(*, now: datetime | None = None) -> list[StuckFinding]:
    """Return deposit webhook events not processed (received, failed or flagged) past STUCK_WEBHOOK_AFTER_MINUTES."""
    now = now or timezone.now()
    limit_s = age_limit_s("STUCK_WEBHOOK_AFTER_MINUTES")
    rows = (
        WebhookEvent.objects.exclude(status__in=[WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED])
        .filter(received_at__lt=now - timedelta(seconds=limit_s))
        .order_by("received_at")
    )
    return [
        StuckFinding(
            kind="webhook_event",
            id=str(event.pk),
            state=str(event.status),
            age_s=int((now - event.received_at).total_seconds()),
            limit_s=limit_s,
            detail=f"provider={event.provider} event_id={event.event_id} reference={event.reference}",
        )
        for event in rows
    ]
