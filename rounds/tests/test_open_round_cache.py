"""An OPEN round's public answer served at most ROUND_OPEN_CACHE_S old (per process, on a hand-moved clock):
its pools and its status lag by at most that bound, and a bet on a round still shown OPEN after it
locked is refused by the database check, changing nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from ledger.tests.factories import FundedPlayerFactory
from ops.actors import SystemActor
from payouts.tests.helpers import snapshot

pytestmark = pytest.mark.django_db

PATHS = ("/v1/rounds/current", "/v1/rounds/20250908")


def _read(path: str) -> tuple[dict[str, Any], int]:
    with CaptureQueriesContext(connection) as captured:
        response = APIClient().get(path)
    assert response.status_code == 200, response.content
    return response.json(), len(captured.captured_queries)


@pytest.mark.parametrize("path", PATHS)
def test_an_open_answer_is_served_at_most_the_bound_old(
    path: str, open_round: Callable[..., Any], place: Callable[..., Any], ttl_clock: Any, settings: Any
) -> None:
    bound = settings.ROUND_OPEN_CACHE_S
    assert bound == 1.0  # the documented default
    round_obj = open_round("20250908", reference="100")
    place(round_obj, "UP", 3_000_000)
    first, queries = _read(path)
    assert (first["status"], first["pools"]["up_u"], queries) == ("OPEN", 3_000_000, 1)
    place(round_obj, "DOWN", 2_000_000)
    ttl_clock.advance(bound - 0.001)
    answer, queries = _read(path)
    assert (answer, queries) == (first, 0)  # within the bound: the answer rendered before the bet
    ttl_clock.advance(0.001)
    answer, queries = _read(path)
    assert (answer["pools"]["down_u"], answer["pools"]["total_u"], queries) == (2_000_000, 5_000_000, 1)


@pytest.mark.parametrize("path", PATHS)
def test_a_lock_is_seen_within_the_bound_and_a_bet_shown_open_is_refused(
    path: str, open_round: Callable[..., Any], place: Callable[..., Any], ttl_clock: Any, settings: Any
) -> None:
    """Read OPEN, lock (before lock time: an emergency lock), bet on what still reads OPEN: refused, nothing moved."""
    from rounds.services import round_lock

    round_obj = open_round("20250908", reference="100")
    place(round_obj, "UP", 3_000_000)
    place(round_obj, "DOWN", 1_000_000)
    assert _read(path)[0]["status"] == "OPEN"
    round_lock(code=round_obj.code, acting_user=SystemActor("cli:test"), reason="emergency")
    ttl_clock.advance(settings.ROUND_OPEN_CACHE_S / 2)
    assert _read(path)[0]["status"] == "OPEN"  # the answer may lag the lock, by less than the bound

    player = FundedPlayerFactory.create(balance_u=1_000_000)
    client = APIClient()
    client.force_authenticate(player)
    before = snapshot()
    refused = client.post(
        f"/v1/rounds/{round_obj.code}/bets",
        {"side": "UP", "stake_u": 1_000_000},
        format="json",
        HTTP_IDEMPOTENCY_KEY="shown-open",
    )
    assert refused.status_code == 409 and refused.json()["type"] == "rounds/locked", refused.content
    assert snapshot() == before

    ttl_clock.advance(settings.ROUND_OPEN_CACHE_S / 2)
    locked, _ = _read(path)
    assert locked["status"] == "LOCKED" and locked["merkle_root"]  # at the bound: the status as stored
    assert (locked["pools"]["up_u"], locked["pools"]["down_u"]) == (3_000_000, 1_000_000)


def test_a_round_read_any_other_status_is_not_kept_by_the_open_cache(
    open_round: Callable[..., Any], ttl_clock: Any
) -> None:
    """A LOCKED answer keeps its own caching: the row is read each time (its status), never served from here."""
    from rounds.services import round_lock

    round_obj = open_round("20250908", reference="100")
    round_lock(code=round_obj.code, acting_user=SystemActor("cli:test"), reason="emergency")
    for path in PATHS:
        assert _read(path)[0]["status"] == "LOCKED"
        assert _read(path)[1] == 1


def test_the_bound_zero_turns_the_cache_off(
    open_round: Callable[..., Any], place: Callable[..., Any], ttl_clock: Any, settings: Any
) -> None:
    settings.ROUND_OPEN_CACHE_S = 0
    round_obj = open_round("20250908", reference="100")
    assert _read("/v1/rounds/current")[0]["pools"]["total_u"] == 0
    place(round_obj, "UP", 3_000_000)
    assert _read("/v1/rounds/current")[0]["pools"]["total_u"] == 3_000_000


def test_the_one_statement_picks_as_before(open_round: Callable[..., Any], clock: Any) -> None:
    """Today's round, else the OPEN one with the lowest code, else the last one; a code answers only itself."""
    from datetime import UTC, datetime

    from rounds.errors import RoundNotFound
    from rounds.models import Round
    from rounds.selectors import round_current, round_public

    with pytest.raises(RoundNotFound):
        round_current()
    for code in ("20250902", "20250904", "20250908"):
        open_round(code, reference="100")
    clock.set(datetime(2025, 9, 8, 15, tzinfo=UTC))
    assert round_current().code == "20250908"  # today's
    clock.set(datetime(2025, 9, 9, 15, tzinfo=UTC))  # no round for today
    assert round_current().code == "20250902"  # the OPEN one with the lowest code
    Round.objects.filter(code="20250902").update(status=Round.Status.VOID)
    assert round_current().code == "20250904"
    Round.objects.exclude(code="20250902").update(status=Round.Status.SETTLED)
    Round.objects.filter(code="20250902").update(status=Round.Status.OPEN)
    assert round_current().code == "20250902"
    Round.objects.update(status=Round.Status.VOID)
    assert round_current().code == "20250908"  # none OPEN: the last one
    found = round_public(code="20250904")
    assert (found.code, found.status) == ("20250904", Round.Status.VOID)
    assert isinstance(found.price_evidence, list) and found.__dict__["live_up_pool_u"] == 0  # JSON parsed, sums set
    with pytest.raises(RoundNotFound):
        round_public(code="20250909")


def test_the_api_docs_state_the_lag() -> None:
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in ("/v1/rounds/current", "/v1/rounds/{code}"):
        assert "up to one second old (`ROUND_OPEN_CACHE_S`)" in paths[path]["get"]["description"], path
