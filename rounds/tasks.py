"""Rounds jobs: the beat tick that opens, locks and settles rounds on the XNYS clock."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from ops.workers import worker_run

logger = logging.getLogger(__name__)


@shared_task(name="rounds.tasks.rounds_tick")
def rounds_tick() -> dict[str, Any]:
    """Run one tick (every minute, UTC); safe to run at once with the commands and with itself."""
    from . import services

    with worker_run("rounds") as detail:
        report = services.rounds_tick()
        detail.update(report)
        if report["errors"]:
            detail["result"] = "failed"
            for line in report["errors"]:
                logger.error("rounds tick: %s", line)
    return report
