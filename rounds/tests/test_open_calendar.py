"""Opening rounds through the service and command: the XNYS calendar, the reference, the commit chain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ops.actors import BEAT
from rounds import errors
from rounds.domain.commitment import round_commit
from rounds.models import Round
from rounds.selectors import round_params
from rounds.services import round_open, round_open_at_reference

pytestmark = pytest.mark.django_db


def test_early_close_day_locks_at_17_59_59z(clock: Any, prices: Any) -> None:
    clock.set(datetime(2025, 11, 27, 12, tzinfo=UTC))
    prices.set(date(2025, 11, 26), "19000.25")  # Thanksgiving (27th) is a holiday: reference is the 26th
    round_obj, created = round_open(code="20251128", acting_user=BEAT)
    assert created
    assert round_obj.lock_at == datetime(2025, 11, 28, 17, 59, 59, tzinfo=UTC)
    assert round_obj.close_at == datetime(2025, 11, 28, 18, 0, tzinfo=UTC)
    assert round_obj.settle_after == datetime(2025, 11, 28, 18, 5, tzinfo=UTC)
    assert (round_obj.reference_session, round_obj.reference_close) == (date(2025, 11, 26), "19000.25")


def test_dst_day_locks_at_19_59_59z(clock: Any, prices: Any) -> None:
    clock.set(datetime(2025, 3, 9, 12, tzinfo=UTC))
    prices.set(date(2025, 3, 7), "18196.22")
    round_obj, _ = round_open(code="20250310", acting_user=BEAT)
    assert round_obj.lock_at == datetime(2025, 3, 10, 19, 59, 59, tzinfo=UTC)
    assert round_obj.reference_session == date(2025, 3, 7)


@pytest.mark.parametrize("code", ["20250109", "20260403", "20250906"])
def test_non_session_days_refuse_to_open(code: str, clock: Any, prices: Any) -> None:
    clock.set(datetime(2025, 1, 1, tzinfo=UTC))
    prices.set(date(2025, 1, 8), "19000")
    with pytest.raises(errors.NotASession):
        round_open(code=code, acting_user=BEAT)
    with pytest.raises(CommandError, match="not an XNYS trading session"):
        call_command("open_round", "--code", code)
    assert Round.objects.count() == 0


def test_reference_after_a_holiday_is_the_previous_rounds_close(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
    clock: Any,
) -> None:
    from rounds.settlement import round_settle

    before = open_round("20251126", reference="100")
    place(before, "UP", 1_000_000)
    place(before, "DOWN", 1_000_000)
    lock_and_reach_settlement(before)
    prices.set(date(2025, 11, 26), "101.5")
    round_settle(code="20251126", acting_user=BEAT)
    prices.set(date(2025, 11, 26), None)  # the oracle forgets; the settled round remembers

    clock.set(datetime(2025, 11, 27, 12, tzinfo=UTC))
    after, _ = round_open(code="20251128", acting_user=BEAT)

    assert after.reference_close == "101.5" and after.reference_session == date(2025, 11, 26)
    assert after.previous_commit == before.commit


def test_reference_waits_for_an_unsettled_previous_round(open_round: Callable[..., Any], clock: Any) -> None:
    open_round("20250908")
    with pytest.raises(errors.ReferenceUnavailable):
        round_open(code="20250909", acting_user=BEAT)
    assert Round.objects.count() == 1


def test_commit_is_recomputable_and_chained(open_round: Callable[..., Any]) -> None:
    first = open_round("20250908")
    assert first.previous_commit is None
    assert round_commit(params=round_params(round_obj=first)) == first.commit
    again, created = round_open(code="20250908", acting_user=BEAT)
    assert not created and again.pk == first.pk


def test_open_too_late_or_without_reference_refuses(clock: Any, prices: Any) -> None:
    clock.set(datetime(2025, 9, 8, 20, tzinfo=UTC))
    prices.set(date(2025, 9, 5), "100")
    with pytest.raises(errors.RoundTooLate):
        round_open(code="20250908", acting_user=BEAT)
    clock.set(datetime(2025, 9, 8, 12, tzinfo=UTC))
    prices.set(date(2025, 9, 5), "100.1", source="src-a")  # sources disagree
    with pytest.raises(errors.ReferenceUnavailable):
        round_open(code="20250908", acting_user=BEAT)
    with pytest.raises(errors.ReasonRequired):
        round_open_at_reference(code="20250908", reference=Decimal(100), source="x", acting_user=BEAT, reason="")
    assert Round.objects.count() == 0
    round_obj = round_open_at_reference(
        code="20250908", reference=Decimal("100.10"), source="test", acting_user=BEAT, reason="manual"
    )
    assert round_obj.reference_close == "100.1"


def test_open_round_command_prints_the_round(clock: Any, prices: Any, capsys: Any) -> None:
    clock.set(datetime(2025, 11, 27, 12, tzinfo=UTC))
    prices.set(date(2025, 11, 26), "19000")
    call_command("open_round", "--code", "20251128")
    out = capsys.readouterr().out
    assert "Opened round 20251128" in out and "2025-11-28 17:59:59Z" in out
    call_command("open_round", "--code", "20251128")
    assert "Already open" in capsys.readouterr().out
    assert Round.objects.count() == 1
