"""References are final: a round's reference close is taken only once its session has closed (plus the buffer)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ops.actors import BEAT
from ops.models import AuditRecord
from rounds import errors
from rounds.domain.calendar import session_times
from rounds.models import Round
from rounds.services import round_open, round_open_at_reference
from rounds.tasks import rounds_tick

pytestmark = pytest.mark.django_db

FRIDAY = date(2026, 11, 27)  # an early close (18:00Z); the reference of Monday 2026-11-30's round
FINAL_AT = session_times(day=FRIDAY).settle_after_utc


def test_a_session_not_yet_closed_is_refused_from_the_oracle_and_from_an_operator(clock: Any, prices: Any) -> None:
    clock.set(datetime(2026, 11, 27, 7, tzinfo=UTC))  # the run: Friday 07:00Z
    prices.set(FRIDAY, "19000.10")  # even if a source already answers something
    with pytest.raises(errors.ReferenceNotFinal, match="close of 2026-11-27, which is final only at 2026-11-27 18:05Z"):
        round_open(code="20261130", acting_user=BEAT)
    with pytest.raises(errors.ReferenceNotFinal):
        round_open_at_reference(
            code="20261130", reference=Decimal("19000.10"), source="test", acting_user=BEAT, reason="I checked"
        )
    with pytest.raises(CommandError, match="final only at 2026-11-27 18:05Z") as refused:
        call_command("open_round", "--code", "20261130")
    assert "\n" not in str(refused.value)
    clock.set(FINAL_AT - timedelta(seconds=1))  # closed, but inside the settle buffer
    with pytest.raises(errors.ReferenceNotFinal):
        round_open(code="20261130", acting_user=BEAT)
    assert Round.objects.count() == 0 and not AuditRecord.objects.filter(action="rounds.open").exists()


def test_a_session_that_has_closed_is_taken(clock: Any, prices: Any) -> None:
    clock.set(FINAL_AT)
    prices.set(FRIDAY, "19000.10")
    round_obj, created = round_open(code="20261130", acting_user=BEAT)
    assert created and (round_obj.reference_session, round_obj.reference_close) == (FRIDAY, "19000.1")


def test_beat_opens_the_next_round_once_the_reference_is_final(clock: Any, prices: Any) -> None:
    prices.set(FRIDAY, "19000.10")
    prices.set(date(2026, 11, 25), "18900")
    clock.set(datetime(2026, 11, 27, 7, tzinfo=UTC))
    assert rounds_tick()["opened"] == ["20261127"]  # Friday's own round: Wednesday's close is final
    clock.set(session_times(day=FRIDAY).lock_utc + timedelta(seconds=1))
    report = rounds_tick()
    assert report["opened"] == [] and any("final only at 2026-11-27 18:05Z" in p for p in report["pending"])
    assert not Round.objects.filter(code="20261130").exists()
    clock.set(FINAL_AT + timedelta(seconds=30))
    assert rounds_tick()["opened"] == ["20261130"]
    assert Round.objects.get(code="20261130").reference_close == "19000.1"
