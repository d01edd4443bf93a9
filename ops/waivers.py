"""Waivers with deadlines: a high-risk waiver past its deadline is escalated, never left silent."""

from __future__ import annotations

import logging

from django.utils import timezone

from .actors import SystemActor
from .audit import audit_record
from .models import Waiver

logger = logging.getLogger(__name__)


def waivers_escalate_overdue() -> list[Waiver]:
    """Mark every open high-risk waiver past its deadline as escalated, log it loudly, audit it."""
    now = timezone.now()
    overdue = list(
        Waiver.objects.filter(
            risk=Waiver.Risk.HIGH, closed_at__isnull=True, escalated_at__isnull=True, deadline__lt=now
        )
    )
    for waiver in overdue:
        waiver.escalated_at = now
        waiver.save(update_fields=["escalated_at"])
        audit_record(
            actor=SystemActor("waiver-escalation"),
            action="ops.waiver.escalate",
            obj=waiver,
            reason=f"high-risk waiver past its deadline {waiver.deadline:%Y-%m-%d}",
        )
        logger.error(
            "ESCALATION: high-risk waiver %s (%s, ticket %s, owner %s) is past its deadline",
            waiver.pk,
            waiver.check_name,
            waiver.ticket,
            waiver.owner,
        )
    return overdue
