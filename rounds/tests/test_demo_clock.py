"""The demo clock of `make run`: `rounds.clock.now` adds its offset in development only, and `demo_clock` moves it
forward to a round's lock, close or settlement, never backwards, and is refused anywhere else."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rounds import clock as rounds_clock
from rounds.demo_clock import offset_write
from rounds.domain import calendar
from rounds.tests.conftest import Clock, Prices

REAL_NOW = rounds_clock.now  # the function itself, before any fixture patches it


@pytest.fixture
def run_dir(settings: Any, tmp_path: Path) -> Path:
    settings.RUN_DIR = tmp_path / "run"
    return tmp_path / "run"


@pytest.fixture
def development(settings: Any, run_dir: Path) -> Path:
    settings.ENVIRONMENT = "development"
    return run_dir


def demo_clock(*args: str) -> str:
    out = StringIO()
    call_command("demo_clock", *args, stdout=out)
    return out.getvalue()


def offset_file(run_dir: Path) -> Path:
    return run_dir / rounds_clock.OFFSET_FILE


@pytest.fixture
def future_round(clock: Clock, prices: Prices, monkeypatch: pytest.MonkeyPatch, db: Any) -> Any:
    """A round OPEN for a session about ten days ahead of the real date, then the real clock back in place."""
    from rounds.tests.factories import RoundFactory

    day = calendar.next_session(on_or_after=datetime.now(UTC).date() + timedelta(days=10))
    round_obj = RoundFactory.create(code=calendar.code_for(day), clock=clock, prices=prices)
    monkeypatch.setattr("rounds.clock.now", REAL_NOW)
    return round_obj


def test_the_offset_shifts_the_rounds_clock_in_development(development: Path) -> None:
    development.mkdir(parents=True)
    offset_file(development).write_text("3600\n")
    assert 3595 < (REAL_NOW() - datetime.now(UTC)).total_seconds() < 3605
    offset_write(7200)  # what demo_clock writes is seen at once (the cache follows the file)
    assert 7195 < (REAL_NOW() - datetime.now(UTC)).total_seconds() < 7205


@pytest.mark.parametrize("environment", ["production", "prod-local", "staging", "test"])
def test_outside_development_the_file_is_never_read(
    settings: Any, run_dir: Path, environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ENVIRONMENT = environment
    run_dir.mkdir(parents=True)
    offset_file(run_dir).write_text("86400\n")

    def no_read(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the demo clock's file was read outside development")

    monkeypatch.setattr(rounds_clock, "demo_offset_s", no_read)
    assert abs((REAL_NOW() - datetime.now(UTC)).total_seconds()) < 5


def test_a_file_that_is_not_a_number_is_an_error_not_a_guess(development: Path) -> None:
    development.mkdir(parents=True)
    offset_file(development).write_text("tomorrow\n")
    with pytest.raises(rounds_clock.DemoClockError, match="not a whole number of seconds"):
        REAL_NOW()
    with pytest.raises(CommandError, match="not a whole number of seconds"):
        demo_clock()


@pytest.mark.parametrize("environment", ["production", "prod-local", "staging", "test"])
@pytest.mark.parametrize("args", [(), ("--to", "lock"), ("--reset",)])
def test_the_command_is_refused_outside_development_and_changes_nothing(
    settings: Any, run_dir: Path, environment: str, args: tuple[str, ...]
) -> None:
    settings.ENVIRONMENT = environment
    with pytest.raises(CommandError, match=rf"demo_clock is refused here \(ENVIRONMENT={environment}\)") as refused:
        demo_clock(*args)
    assert "\n" not in str(refused.value)
    assert not run_dir.exists()


def test_it_shows_the_clocks_and_the_open_round(development: Path, future_round: Any) -> None:
    text = demo_clock()
    assert "offset:       0 s" in text
    assert f"round {future_round.code} OPEN: lock_at {future_round.lock_at:%Y-%m-%d %H:%M:%S}Z" in text
    assert f"settle_after {future_round.settle_after:%Y-%m-%d %H:%M:%S}Z" in text


def test_it_moves_just_past_lock_close_and_settle_then_never_back(development: Path, future_round: Any) -> None:
    from ops.actors import BEAT
    from rounds.services import round_lock

    text = demo_clock("--to", "lock")
    now = REAL_NOW()
    assert future_round.lock_at < now < future_round.lock_at + timedelta(seconds=5), text
    assert f"just past round {future_round.code}'s lock_at" in text
    locked, changed = round_lock(code=future_round.code, acting_user=BEAT)
    assert changed and locked.locked_at >= future_round.lock_at  # the services read the shifted time

    demo_clock("--to", "close")
    assert future_round.close_at < REAL_NOW() < future_round.close_at + timedelta(seconds=5)
    demo_clock("--to", "settle")
    at_settle = int(offset_file(development).read_text())
    assert future_round.settle_after < REAL_NOW() < future_round.settle_after + timedelta(seconds=5)

    with pytest.raises(CommandError, match="never moves backwards") as refused:
        demo_clock("--to", "close")
    assert "\n" not in str(refused.value)
    assert int(offset_file(development).read_text()) == at_settle  # nothing changed
    with pytest.raises(CommandError, match=r"No round is OPEN: nothing to move the demo clock to its lock_at"):
        demo_clock("--to", "lock")  # the round is LOCKED now

    assert "offset was" in demo_clock("--reset")
    assert not offset_file(development).exists()
    assert abs((REAL_NOW() - datetime.now(UTC)).total_seconds()) < 5


def test_without_a_round_there_is_nothing_to_move_to(development: Path, db: Any) -> None:
    with pytest.raises(CommandError, match="No round is OPEN or LOCKED: nothing to move the demo clock to its"):
        demo_clock("--to", "settle")
    assert not offset_file(development).exists()


def deploy_errors() -> list[Any]:
    from django.core.checks.registry import registry

    from rounds.checks import no_demo_clock

    assert no_demo_clock in registry.get_checks(include_deployment_checks=True)  # what `check --deploy` runs
    return [m for m in no_demo_clock() if m.id == "rounds.E001"]


def test_the_deploy_check_fails_while_an_offset_file_sits_outside_development(settings: Any, run_dir: Path) -> None:
    settings.ENVIRONMENT = "production"
    assert deploy_errors() == []
    run_dir.mkdir(parents=True)
    offset_file(run_dir).write_text("3600\n")
    (error,) = deploy_errors()
    assert f"demo clock offset file exists at {offset_file(run_dir)} (ENVIRONMENT=production)" in error.msg
    settings.ENVIRONMENT = "development"  # make run's own folder: no deploy error
    assert deploy_errors() == []


def test_to_open_moves_to_the_next_sessions_day_where_its_round_opens_and_is_current(
    development: Path, prices: Prices, db: Any
) -> None:
    from ops.actors import BEAT
    from rounds.selectors import round_current_code
    from rounds.services import round_open

    day = calendar.next_session(on_or_after=datetime.now(UTC).date() + timedelta(days=10))
    after_lock = calendar.session_times(day=day).lock_utc + timedelta(minutes=10)  # no round takes bets now
    offset_write(math.ceil((after_lock - datetime.now(UTC)).total_seconds()))
    following = calendar.next_session(on_or_after=day + timedelta(days=1))
    code = calendar.code_for(following)

    text = demo_clock("--to", "open")
    start_of_day = datetime.combine(following, time(0), tzinfo=ZoneInfo("America/New_York"))
    assert start_of_day < REAL_NOW() < start_of_day + timedelta(seconds=5), text
    assert f"just past round {code}'s day" in text
    assert round_current_code() == code

    with pytest.raises(CommandError, match=rf"Round {code} can open at the rounds' time .* already: beat opens it"):
        demo_clock("--to", "open")  # nothing to move: the day has begun
    prices.set(day, "100")
    round_obj, created = round_open(code=code, acting_user=BEAT)  # what beat does, on the shifted time
    assert created and round_obj.status == "OPEN"
    with pytest.raises(CommandError, match=rf"Round {code} is already OPEN; there is no round to open before it"):
        demo_clock("--to", "open")
