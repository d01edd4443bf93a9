"""Waiver escalation (beat, hourly, and `waiver escalate`) run twice at once escalates each waiver once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ops.models import AuditRecord, Waiver
from ops.tests.at_once import at_once, results
from ops.waivers import waivers_escalate_overdue

WAIVERS = 20


@pytest.mark.django_db(transaction=True)
def test_two_escalation_runs_at_once_escalate_and_audit_each_waiver_once() -> None:
    deadline = timezone.now() - timedelta(hours=1)
    overdue = {
        Waiver.objects.create(
            check_name=f"check-{n}", ticket=f"SEC-{n}", risk="high", owner="sre", reason="r", deadline=deadline
        ).pk
        for n in range(WAIVERS)
    }
    not_due = Waiver.objects.create(
        check_name="later", ticket="SEC-L", risk="high", owner="sre", reason="r", deadline=deadline + timedelta(days=2)
    )
    escalated = [[w.pk for w in run] for run in results(at_once(waivers_escalate_overdue))]
    both = escalated[0] + escalated[1]
    assert sorted(both) == sorted(overdue)  # each one escalated by exactly one of the two runs
    audited = AuditRecord.objects.filter(action="ops.waiver.escalate")
    assert sorted(int(pk) for pk in audited.values_list("object_id", flat=True)) == sorted(overdue)
    assert Waiver.objects.filter(pk__in=overdue, escalated_at__isnull=True).count() == 0
    assert Waiver.objects.get(pk=not_due.pk).escalated_at is None
    assert waivers_escalate_overdue() == []  # and a third run finds nothing left
