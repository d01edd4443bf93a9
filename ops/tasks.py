"""Ops jobs: waiver escalation."""

from __future__ import annotations

from celery import shared_task

from .workers import worker_run


@shared_task(name="ops.tasks.escalate_overdue_waivers")
def escalate_overdue_waivers() -> int:
    """Escalate high-risk waivers past their deadline (beat, hourly)."""
    from .waivers import waivers_escalate_overdue

    with worker_run("waivers") as detail:
        escalated = waivers_escalate_overdue()
        detail["escalated"] = len(escalated)
    return len(escalated)
