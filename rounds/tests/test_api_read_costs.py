"""What the hot reads cost: queries per request through the full middleware stack (a player with a knox
token), the cached answers of locked and finished rounds never stale, an OPEN round's answer and the
maintenance switch at most their bound (ROUND_OPEN_CACHE_S, SWITCH_CACHE_S) old, moved on a hand clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops.actors import BEAT

pytestmark = pytest.mark.django_db


def _queries(client: Any, path: str) -> tuple[Any, list[str]]:
    client.get(path)  # the first request of a client may warm per-process state; count the next one
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return response, [q["sql"] for q in captured.captured_queries]


def _captured(client: Any, path: str) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return response, [q["sql"] for q in captured.captured_queries]


def test_the_wallet_is_one_query_while_its_token_is_remembered(
    api_client_for: Callable[..., Any],
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    make_player: Callable[..., Any],
    fund: Any,
    ttl_clock: Any,
    settings: Any,
) -> None:
    """The token checked in the database once per AUTH_TOKEN_CACHE_S; then each wallet read is one statement."""
    round_obj = open_round("20250908", reference="100")
    alice = make_player()
    place(round_obj, "UP", 3_000_000, player=alice)
    fund(alice, 5_000_000)
    client = api_client_for(alice)
    _, cold = _captured(client, "/v1/wallet")
    assert len(cold) == 2, cold
    assert "knox_authtoken" in cold[0] and "accounts_user" in cold[0]  # the token and its user, joined
    assert "ledger_account" in cold[1] and "rounds_bet" in cold[1]  # accounts and open stakes in one query
    ttl_clock.advance(settings.AUTH_TOKEN_CACHE_S * 0.9)
    response, sql = _captured(client, "/v1/wallet")
    assert len(sql) == 1, sql  # the token remembered: the wallet's one statement is the request's only one
    assert "ledger_account" in sql[0] and "rounds_bet" in sql[0] and "knox_authtoken" not in sql[0]
    ttl_clock.advance(settings.AUTH_TOKEN_CACHE_S * 0.2)
    assert len(_captured(client, "/v1/wallet")[1]) == 2  # past the bound: the token is checked again
    assert not any(s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")) for s in cold + sql)  # no writes
    assert response.json() == {
        "balances": [
            {"currency": "USDC", "exponent": 6, "available_u": 5_000_000, "held_u": 0, "in_open_bets_u": 3_000_000}
        ]
    }
    assert "no-store" in response["Cache-Control"]


def test_an_expired_token_is_still_refused_and_deleted(api_client_for: Callable[..., Any], player: Any) -> None:
    from django.utils import timezone
    from knox.models import AuthToken

    client = api_client_for(player)
    AuthToken.objects.filter(user=player).update(expiry=timezone.now() - timedelta(seconds=1))
    assert client.get("/v1/wallet").status_code == 401
    assert not AuthToken.objects.filter(user=player).exists()


def test_the_current_round_is_one_query_open_and_none_once_settled(
    api_client_for: Callable[..., Any],
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
    make_player: Callable[..., Any],
    ttl_clock: Any,
    settings: Any,
) -> None:
    """OPEN: one statement (round and stripes' sums), then none within ROUND_OPEN_CACHE_S; LOCKED: one; SETTLED: none."""
    from rounds.settlement import round_settle

    round_obj = open_round("20250908", reference="100")
    alice = make_player()
    place(round_obj, "UP", 3_000_000, player=alice)
    place(round_obj, "DOWN", 1_000_000)
    client = api_client_for(alice)  # a token is not even looked at: the answer is public
    response, sql = _captured(client, "/v1/rounds/current")
    assert len(sql) == 1 and "rounds_round" in sql[0] and "rounds_poolstripe" in sql[0], sql
    assert response.json()["status"] == "OPEN" and response.json()["pools"]["total_u"] == 4_000_000
    assert "no-store" in response["Cache-Control"]  # a token was sent: still never stored
    assert _captured(client, "/v1/rounds/current")[1] == []  # within the bound: the rendered answer

    # OPEN: a new bet shows once the answer is older than the bound, not before.
    place(round_obj, "UP", 2_000_000)
    ttl_clock.advance(settings.ROUND_OPEN_CACHE_S * 0.9)
    assert client.get("/v1/rounds/current").json()["pools"]["up_u"] == 3_000_000
    ttl_clock.advance(settings.ROUND_OPEN_CACHE_S * 0.1)
    assert client.get("/v1/rounds/current").json()["pools"]["up_u"] == 5_000_000

    lock_and_reach_settlement(round_obj)
    ttl_clock.advance(settings.ROUND_OPEN_CACHE_S)
    response, sql = _queries(client, "/v1/rounds/current")
    assert len(sql) == 1, sql  # LOCKED: the row is read (its status), the answer comes from the cache
    locked = response.json()
    assert locked["status"] == "LOCKED" and locked["merkle_root"] and locked["settlement"] is None

    prices.set(round_obj.open_at.date(), "100.1")
    round_settle(code=round_obj.code, acting_user=BEAT)
    response, sql = _queries(client, "/v1/rounds/current")
    assert sql == []  # SETTLED is final: answered from the cache alone
    settled = response.json()
    assert settled["status"] == "SETTLED" and settled["settlement"]["result"] == "UP"
    assert settled["merkle_root"] == locked["merkle_root"]
    assert client.get(f"/v1/rounds/{round_obj.code}").json() == settled


def test_a_cached_locked_round_is_never_served_once_it_is_settled(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
) -> None:
    """Lock -> read (cached) -> settle -> read: the settled answer, from both endpoints, at once."""
    from rest_framework.test import APIClient

    from rounds.settlement import round_settle

    round_obj = open_round("20250908", reference="100")
    place(round_obj, "UP", 3_000_000)
    place(round_obj, "DOWN", 1_000_000)
    anonymous = APIClient()
    lock_and_reach_settlement(round_obj)
    for path in ("/v1/rounds/current", f"/v1/rounds/{round_obj.code}", "/rounds/current"):
        assert anonymous.get(path).json()["status"] == "LOCKED"
        assert anonymous.get(path).json()["status"] == "LOCKED"  # the second one from the cache

    prices.set(round_obj.open_at.date(), "99.9")
    round_settle(code=round_obj.code, acting_user=BEAT)
    for path in (f"/v1/rounds/{round_obj.code}", "/v1/rounds/current", "/rounds/current"):
        answer = anonymous.get(path).json()
        assert answer["status"] == "SETTLED" and answer["settlement"]["result"] == "DOWN", path


def test_a_round_voided_from_locked_is_never_served_as_locked(
    open_round: Callable[..., Any], place: Callable[..., Any], lock_and_reach_settlement: Callable[..., Any]
) -> None:
    """One-sided pool: lock, read, settle (VOID by composition), read."""
    from rest_framework.test import APIClient

    from rounds.settlement import round_settle

    round_obj = open_round("20250908", reference="100")
    place(round_obj, "UP", 3_000_000)
    anonymous = APIClient()
    lock_and_reach_settlement(round_obj)
    assert anonymous.get("/v1/rounds/current").json()["status"] == "LOCKED"
    round_settle(code=round_obj.code, acting_user=BEAT)
    answer = anonymous.get("/v1/rounds/current").json()
    assert answer["status"] == "VOID" and answer["settlement"]["result"] == "VOID"


def test_a_changed_output_version_is_a_different_entry(
    open_round: Callable[..., Any], lock_and_reach_settlement: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rest_framework.test import APIClient

    from rounds import apis

    round_obj = open_round("20250908", reference="100")
    locked = lock_and_reach_settlement(round_obj)
    anonymous = APIClient()
    assert anonymous.get("/v1/rounds/current").json()["status"] == "LOCKED"
    monkeypatch.setattr(apis, "ROUND_OUTPUT_VERSION", apis.ROUND_OUTPUT_VERSION + 1)
    with CaptureQueriesContext(connection) as captured:
        assert anonymous.get("/v1/rounds/current").json()["status"] == "LOCKED"
    assert apis.cache.get(apis._output_key(round_obj=locked)) is not None  # stored anew under the new key
    assert len(captured.captured_queries) == 1


def test_maintenance_mode_takes_effect_within_its_bound(
    api_client_for: Callable[..., Any],
    open_round: Callable[..., Any],
    make_player: Callable[..., Any],
    fund: Any,
    make_staff: Callable[..., Any],
    ttl_clock: Any,
    settings: Any,
) -> None:
    """The switch is read on guarded writes at most SWITCH_CACHE_S old (per process), never on a read."""
    from ops.models import Switch
    from ops.switches import switch_set

    round_obj = open_round("20250908", reference="100")
    alice, bob = make_player(), make_player()
    fund(alice, 10_000_000)
    fund(bob, 10_000_000)
    client, bob_client = api_client_for(alice), api_client_for(bob)
    for _ in range(3):
        assert client.get("/v1/wallet").status_code == 200
        assert client.get("/v1/rounds/current").status_code == 200
    bet = {"side": "UP", "stake_u": 1_000_000}
    first = client.post(f"/v1/rounds/{round_obj.code}/bets", bet, format="json", HTTP_IDEMPOTENCY_KEY="m-1")
    assert first.status_code == 201, first.content
    switch_set(name=Switch.Name.MAINTENANCE, on=True, reason="cutover", actor=make_staff(role="admin"))
    ttl_clock.advance(settings.SWITCH_CACHE_S)  # the bound has passed: every process now reads it on
    refused = bob_client.post(f"/v1/rounds/{round_obj.code}/bets", bet, format="json", HTTP_IDEMPOTENCY_KEY="m-2")
    assert refused.status_code == 503 and refused.json()["type"] == "maintenance"
    assert client.get("/v1/wallet").status_code == 200  # reads stay up
    switch_set(name=Switch.Name.MAINTENANCE, on=False, reason="done", actor=make_staff(role="admin"))
    ttl_clock.advance(settings.SWITCH_CACHE_S)
    again = bob_client.post(f"/v1/rounds/{round_obj.code}/bets", bet, format="json", HTTP_IDEMPOTENCY_KEY="m-3")
    assert again.status_code == 201, again.content


def test_the_current_round_code_is_computed_once_per_new_york_date(clock: Any) -> None:
    from rounds import selectors

    selectors._session_code_on_or_after.cache_clear()
    assert selectors.round_current_code() == "20250908"
    assert selectors.round_current_code() == "20250908"
    assert selectors._session_code_on_or_after.cache_info().misses == 1
    clock.set(clock.now + timedelta(days=5))  # Saturday 2025-09-13: the next session is Monday's
    assert selectors.round_current_code() == "20250915"


def test_a_worker_is_warmed_before_its_first_request() -> None:
    from config.warmup import warm_worker
    from rounds.domain import calendar

    warm_worker()
    assert calendar._schedule.cache_info().currsize == 1


def test_the_compiled_wallet_query_answers_each_player_with_their_own_figures(
    open_round: Callable[..., Any], place: Callable[..., Any], make_player: Callable[..., Any], fund: Any
) -> None:
    """Compiled once per process, the player's id swapped in per call: no player ever sees another's figures."""
    from ledger.selectors import _wallet_query, user_wallet

    round_obj = open_round("20250908", reference="100")
    alice, bob, carol = make_player(), make_player(), make_player()
    place(round_obj, "UP", 3_000_000, player=alice)
    fund(bob, 7_000_000)
    fund(bob, 1_000_000, "EUR")
    _wallet_query.cache_clear()

    def figures(user: Any) -> list[tuple[str, int, int, int]]:
        return [(r["currency"], r["available_u"], r["held_u"], r["in_open_bets_u"]) for r in user_wallet(user=user)]

    assert figures(alice) == [("USDC", 0, 0, 3_000_000)]
    assert figures(bob) == [("EUR", 1_000_000, 0, 0), ("USDC", 7_000_000, 0, 0)]
    assert figures(carol) == []
    assert figures(alice) == [("USDC", 0, 0, 3_000_000)]
    assert _wallet_query.cache_info().misses == 1 and _wallet_query.cache_info().hits == 3
