"""Waivers with deadlines: a high-risk waiver past its deadline is escalated, never left silent."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .actors import SystemActor
from .audit import audit_record
from .models import Waiver

logger = logging.getLogger(__name__)


def waivers_escalate_overdue() -> list[Waiver]:
    """Mark every open high-risk waiver past its deadline as escalated, log it loudly, audit it.

    Safe to run twice at once (beat's hourly run and `waiver escalate`): each waiver is claimed by a conditional
    update (still not escalated), so only one run escalates, audits and logs it.
    """
    now = timezone.now()
    overdue = Waiver.objects.filter(
        risk=Waiver.Risk.HIGH, closed_at__isnull=True, escalated_at__isnull=True, deadline__lt=now
    )
    escalated: list[Waiver] = []
    for waiver in overdue:
        with transaction.atomic():
            if not Waiver.objects.filter(pk=waiver.pk, escalated_at__isnull=True).update(escalated_at=now):
                continue  # another run escalated it meanwhile
            waiver.escalated_at = now
            audit_record(
                actor=SystemActor("waiver-escalation"),
                action="ops.waiver.escalate",
                obj=waiver,
                reason=f"high-risk waiver past its deadline {waiver.deadline:%Y-%m-%d}",
            )
        escalated.append(waiver)
        logger.error(
            "ESCALATION: high-risk waiver %s (%s, ticket %s, owner %s) is past its deadline",
            waiver.pk,
            waiver.check_name,
            waiver.ticket,
            waiver.owner,
        )
    return escalated
