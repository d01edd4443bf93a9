"""The house manual's `round_settlement_duration_seconds`: one observation per settlement, whichever path settled
(the beat task, `settle_round`, an approved forced result), as /metrics shows it from any process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from prometheus_client import REGISTRY

from ops.db_roles import app_role
from ops.tests.db_role_harness import app_role_active
from rounds.models import Round
from rounds.tasks import rounds_tick

pytestmark = pytest.mark.django_db
NAME = "round_settlement_duration_seconds"
ROOT = Path(__file__).resolve().parents[2]


def count() -> float:
    """The histogram's count as this process's registry reports it (the web's /metrics reads the same)."""
    value = REGISTRY.get_sample_value(f"{NAME}_count")
    assert value is not None, f"{NAME} is not exposed"
    return value


def scraped_count(body: str) -> float:
    """The histogram's count in a /metrics page."""
    match = re.search(rf"^{NAME}_count (\S+)$", body, re.M)
    assert match, f"{NAME}_count is not on /metrics"
    return float(match[1])


@pytest.fixture
def settle_ready(
    place: Callable[..., Any], prices: Any, lock_and_reach_settlement: Callable[..., Any]
) -> Callable[[Round, str | None], None]:
    """settle_ready(round, close): two bets, locked, past the settle time, the oracle reporting `close`."""

    def _ready(round_obj: Round, close: str | None) -> None:
        place(round_obj, "UP", 1_000_000)
        place(round_obj, "DOWN", 1_000_000)
        lock_and_reach_settlement(round_obj)
        prices.set(round_obj.open_at.date(), close)

    return _ready


def test_every_settlement_path_observes_the_histogram_once(
    open_round: Callable[..., Any],
    settle_ready: Callable[[Round, str | None], None],
    force_settle: Callable[..., Any],
) -> None:
    before = count()

    # The beat task (in production a Celery worker, not the web process that is scraped).
    first = open_round("20250908")
    settle_ready(first, "101")
    assert rounds_tick()["settled"] == ["20250908:UP"]
    assert count() == before + 1
    assert REGISTRY.get_sample_value(f"{NAME}_bucket", {"le": "+Inf"}) == before + 1
    total, duration = REGISTRY.get_sample_value(f"{NAME}_sum"), Round.objects.get(pk=first.pk).settlement_duration_s
    assert total is not None and duration is not None and total >= duration > 0

    # The command.
    second = Round.objects.get(code="20250909")  # the tick opened the next session's round
    settle_ready(second, "100")
    call_command("settle_round", "--code", "20250909", "--result", "AUTO", stdout=StringIO())
    assert Round.objects.get(pk=second.pk).status == Round.Status.SETTLED
    assert count() == before + 2

    # An approved forced result; then a settlement asked for again changes nothing and observes nothing.
    third = open_round("20250910", reference="100")
    settle_ready(third, None)  # no close from the oracle: operators force the result
    assert force_settle(third, "UP").status == Round.Status.SETTLED
    call_command("settle_round", "--code", "20250910", "--result", "AUTO", stdout=StringIO())
    assert count() == before + 3

    body = Client().get("/metrics").content.decode()
    assert scraped_count(body) == before + 3


@pytest.mark.django_db(transaction=True)
def test_a_settlement_made_by_another_process_shows_on_this_ones_metrics(
    open_round: Callable[..., Any],
    settle_ready: Callable[[Round, str | None], None],
    make_staff: Callable[..., Any],
) -> None:
    """The web process that is scraped never settles: a worker or a command's process does. Here another process
    (`settle_round --approve`, the checker applying a forced result) settles, and this process's /metrics counts it."""
    from rounds.overrides import force_result_propose

    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    round_obj = open_round("20250908")
    settle_ready(round_obj, None)
    proposal = force_result_propose(
        code=round_obj.code, result="DOWN", reason="oracle outage", evidence="nasdaq.com", acting_user=alice
    )
    before = count()
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{app_role() if app_role_active() else db['USER']}@{db['HOST']}:{db['PORT']}/"
        f"{db['NAME']}",
        "REDIS_URL": settings.CELERY_BROKER_URL,
    }
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "settle_round", "--approve", str(proposal.pk), "--reason", "close checked",
         "--operator", bob.email],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.SETTLED
    assert count() == before + 1
    body = Client().get("/metrics").content.decode()
    assert scraped_count(body) == before + 1
