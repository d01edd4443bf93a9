"""Warm a fresh web worker before it takes its first request (gunicorn's `post_worker_init`).

Without it the first round read of every new worker loads the XNYS calendar (exchange_calendars and
pandas: seconds under load) and Django imports the URLconf and every view module on its first request,
so that request, and every request queued behind it on the worker, waits. `config` sits above every
app, so it may import them; nothing here touches the database.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


def warm_worker() -> float:
    """Load the URLconf (views, serializers) and the XNYS calendar with today's round code; return seconds."""
    from django.urls import get_resolver

    from rounds.selectors import round_current_code

    started = time.perf_counter()
    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view module
    round_current_code()  # loads the calendar (rounds.domain.calendar._schedule) and memoizes today's code
    elapsed = time.perf_counter() - started
    logger.info("web worker warmed", extra={"warm_up_s": round(elapsed, 3)})
    return elapsed
