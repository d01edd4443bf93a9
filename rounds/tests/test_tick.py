"""The beat tick: opens the next session's round, locks at lock time, settles (AUTO) at settle time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from ledger.models import Journal
from ops.models import WorkerRun
from ops.tests.at_once import at_once, results
from rounds.models import Round
from rounds.tasks import rounds_tick

pytestmark = pytest.mark.django_db


def test_a_day_on_the_clock(clock: Any, prices: Any, place: Callable[..., Any]) -> None:
    clock.set(datetime(2025, 9, 7, 13, tzinfo=UTC))  # Sunday
    prices.set(date(2025, 9, 5), "100")
    report = rounds_tick()
    assert report["opened"] == ["20250908"]
    round_obj = Round.objects.get(code="20250908")
    assert rounds_tick()["opened"] == []  # one open round at a time
    place(round_obj, "UP", 1_000_000)
    place(round_obj, "DOWN", 1_000_000)

    clock.set(round_obj.lock_at - timedelta(seconds=1))
    assert rounds_tick()["locked"] == []
    clock.set(round_obj.lock_at + timedelta(seconds=30))
    report = rounds_tick()
    assert report["locked"] == ["20250908"]
    assert report["opened"] == []  # tomorrow's reference (today's close) is not known yet

    clock.set(round_obj.settle_after + timedelta(seconds=5))
    report = rounds_tick()
    assert report["settled"] == [] and report["pending"]  # no price yet: retried next minute
    prices.set(date(2025, 9, 8), "99")
    report = rounds_tick()
    assert report["settled"] == ["20250908:DOWN"]
    assert report["opened"] == ["20250909"]  # in the same tick: the reference just became final
    clock.set(round_obj.settle_after + timedelta(minutes=1))
    assert rounds_tick()["opened"] == []
    assert Round.objects.get(code="20250909").reference_close == "99"
    assert WorkerRun.objects.filter(worker="rounds").count() == 7


@pytest.mark.django_db(transaction=True)
def test_tick_and_commands_at_once_settle_once(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    clock: Any,
) -> None:
    from django.core.management import call_command

    round_obj = open_round("20250908")
    place(round_obj, "UP", 1_000_000)
    place(round_obj, "DOWN", 3_000_000)
    clock.set(round_obj.settle_after + timedelta(seconds=1))
    prices.set(date(2025, 9, 8), "101")
    prices.set(date(2025, 9, 9), None)
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []

    def run(job: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # noqa: BLE001 (collected and asserted below)
            failures.append(exc)
        finally:
            connection.close()

    jobs = [
        rounds_tick,
        rounds_tick,
        lambda: call_command("settle_round", "--code", "20250908", "--result", "AUTO"),
    ]
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The command may find the round still OPEN (the tick locks it first) and say so; nothing else fails.
    assert all("rounds/not-locked" in str(exc) for exc in failures), failures
    settled = Round.objects.get(code="20250908")
    assert settled.status == Round.Status.SETTLED and settled.result == "UP"
    assert Journal.objects.filter(type="settlement").count() == 1


def test_the_detector_lists_a_round_past_its_settle_time(open_round: Callable[..., Any], settings: Any) -> None:
    from rounds.selectors import stuck_rounds

    round_obj = open_round("20250908")  # settle_after is long past on the real clock: nobody settled it
    (finding,) = stuck_rounds()
    assert (finding.kind, finding.id, finding.state, finding.limit_s) == ("round", "20250908", "OPEN", 90 * 60)
    assert f"settle_after={round_obj.settle_after.isoformat()}" in finding.line()
    settings.STUCK_ROUND_AFTER_MINUTES = 10 * 365 * 24 * 60
    assert stuck_rounds() == []


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_open_the_next_round_once(clock: Any, prices: Any) -> None:
    """Beat's tick run twice at once (a standby beat taking over mid-tick, a redelivered message): one round."""
    from ops.models import AuditRecord

    clock.set(datetime(2025, 9, 7, 13, tzinfo=UTC))  # Sunday: Monday's round is due to open
    prices.set(date(2025, 9, 5), "100")
    reports = results(at_once(rounds_tick))
    assert sorted(code for report in reports for code in report["opened"]) == ["20250908"]
    assert list(Round.objects.values_list("code", flat=True)) == ["20250908"]
    assert AuditRecord.objects.filter(action="rounds.open").count() == 1
