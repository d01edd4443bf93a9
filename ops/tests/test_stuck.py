"""The stuck-job registry: each product registers its finder; every consumer reads one list in one order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from ops.stuck import StuckFinding, register_stuck_source, stuck_jobs, stuck_source_names


def test_each_product_registers_its_sources_in_the_order_the_detector_lists_them() -> None:
    assert stuck_source_names() == ["withdrawals", "webhook_events", "payout_events", "rounds", "chain"]


def test_a_finding_reads_as_one_line() -> None:
    finding = StuckFinding(
        kind="webhook_event", id="7", state="received", age_s=3 * 3600 + 125, limit_s=300, detail="x"
    )
    assert finding.line() == "webhook_event 7 state=received age=3h02m (limit 0h05m) x"
    assert finding.as_dict()["kind"] == "webhook_event"


@pytest.mark.django_db
def test_stuck_jobs_runs_every_source_at_one_now_and_a_new_source_lists_after_the_products(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ops.stuck

    monkeypatch.setattr(ops.stuck, "_sources", dict(ops.stuck._sources))
    seen: list[Any] = []

    @register_stuck_source("test_extra", order=1000)
    def extra(*, now: Any = None) -> list[StuckFinding]:
        seen.append(now)
        return [StuckFinding(kind="extra", id="1", state="s", age_s=1, limit_s=0, detail="")]

    now = timezone.now() + timedelta(days=365)
    findings = stuck_jobs(now=now)
    assert seen == [now]
    assert findings[-1].kind == "extra"
    assert stuck_source_names()[-1] == "test_extra"
