"""Webhook jobs: process one stored event, and re-enqueue events whose message was lost.

`process_webhook_event` takes an event id, reloads it, and calls the same service as the admin and
the replay command; it is safe to run twice. Transient database errors are retried with exponential
backoff; after the last attempt the event is marked `failed` (shown to operators, counted by
`webhook_events_total{status="failed"}` and `worker_runs_total{worker="webhooks",result="failed"}`).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from ops.workers import worker_run

logger = logging.getLogger(__name__)

WORKER = "webhooks"
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
DEFAULT_MAX_ATTEMPTS = 5
BACKOFF_CAP_S = 300


def max_attempts() -> int:
    """How many times an event is tried before it is marked failed."""
    return int(settings.WEBHOOK_MAX_ATTEMPTS)


def backoff_s(retries: int) -> float:
    """Exponential backoff with jitter: about 1, 2, 4, 8... seconds, capped."""
    base = float(settings.WEBHOOK_RETRY_BACKOFF_S)
    delay = min(base * (2**retries), BACKOFF_CAP_S)
    return delay * (0.5 + random.random() / 2)


@shared_task(bind=True, name="webhooks.tasks.process_webhook_event", max_retries=None)
def process_webhook_event(self: Any, event_id: int) -> str:
    """Process one stored webhook event; retry transient errors, then mark it failed."""
    from .processing import webhook_event_process

    retry_error: Exception | None = None
    try:
        with worker_run(WORKER) as detail:
            detail["event_id"] = event_id
            try:
                event = webhook_event_process(event_id=event_id)
            except TRANSIENT_ERRORS as exc:
                final = self.request.retries + 1 >= max_attempts()
                _record_error(event_id=event_id, error=exc, final=final)
                if final:
                    raise
                detail["result"] = "retry"
                detail["error"] = f"{type(exc).__name__}: {exc}"[:500]
                retry_error = exc
            else:
                detail["status"] = event.status
                return str(event.status)
    except TRANSIENT_ERRORS:
        return "failed"
    except Exception as exc:  # a bug or bad data: retrying will not help, show it to operators now
        logger.exception("webhook event %s could not be processed", event_id)
        if not _record_error(event_id=event_id, error=exc, final=True):
            # Not even recorded (the database is unreachable): try the whole task again later.
            raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc
        return "failed"
    raise self.retry(exc=retry_error, countdown=backoff_s(self.request.retries))


def _record_error(*, event_id: int, error: BaseException, final: bool) -> bool:
    """Record a failed attempt; if that fails too (database restarting), log it and go on to the retry.

    Return whether it was recorded. The event stays `received`/`failed` either way, so the retry (or the
    sweep, `retry_stale_events`) picks it up again.
    """
    from .processing import webhook_event_record_error

    try:
        webhook_event_record_error(event_id=event_id, error=error, final=final)
    except Exception:
        logger.exception("could not record the error of webhook event %s; it will be retried", event_id)
        return False
    return True


@shared_task(name="webhooks.tasks.retry_stale_events")
def retry_stale_events() -> int:
    """Beat: re-enqueue events still `received` after a while (broker down at commit, lost message)."""
    from .selectors import webhook_events_stale

    stale_after = timedelta(seconds=int(settings.WEBHOOK_STALE_AFTER_S))
    with worker_run("webhooks_sweeper") as detail:
        ids = webhook_events_stale(older_than=stale_after)
        for event_id in ids:
            process_webhook_event.delay(event_id)
        detail["requeued"] = len(ids)
    if ids:
        logger.warning("re-enqueued %d stale webhook events", len(ids))
    return len(ids)
