"""The one-call bet under concurrency, through the API (PostgreSQL, real threads, real commits).

The same key sent at once by many threads posts once (the others wait on the key's unique index and replay
its answer); one player's two bets at once give one bet; many players at once all bet, each stake in its
stripe, and the ledger's invariants hold. A key that a live request of `ops.idempotency.idempotent_call`
holds is answered 409 and nothing moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections
from django.db.models import Sum

from conftest import token_client
from ledger.services import user_account
from ledger.tests.factories import FundedPlayerFactory
from ops.idempotency import _lock_id, request_fingerprint
from ops.models import IdempotencyKey
from rounds.models import Bet, PoolStripe, Round
from rounds.pools import pools_live
from rounds.tests.factories import pool_held

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30


def _at_once(senders: list[Callable[[], Any]]) -> list[Any]:
    """Run each sender in its own thread (own connection), all released together; return their answers."""
    barrier = threading.Barrier(len(senders), timeout=WAIT_S)
    answers: list[Any] = []
    lock = threading.Lock()

    def run(send: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            answer = send()
        except BaseException as exc:  # noqa: BLE001 (asserted by the caller)
            answer = exc
        finally:
            connection.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run, args=(send,), daemon=True) for send in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads), "a thread is still blocked"
    return answers


def _bet(client: Any, code: str, body: dict[str, Any], key: str) -> Callable[[], Any]:
    return lambda: client.post(f"/v1/rounds/{code}/bets", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _stripes_add_up(round_obj: Round) -> None:
    stored = Round.objects.get(pk=round_obj.pk)
    bets = Bet.objects.filter(round=stored)
    up = bets.filter(side="UP").aggregate(total=Sum("stake_u"))["total"] or 0
    down = bets.filter(side="DOWN").aggregate(total=Sum("stake_u"))["total"] or 0
    assert pools_live(round_obj=stored) == {
        "up_pool_u": up,
        "down_pool_u": down,
        "up_bets": bets.filter(side="UP").count(),
        "down_bets": bets.filter(side="DOWN").count(),
    }
    assert pool_held(stored) == up + down


def test_one_key_sent_at_once_posts_once_and_every_answer_is_that_bet(
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    body = {"side": "UP", "stake_u": 2_000_000}
    answers = _at_once([_bet(token_client(player), round_obj.code, body, "same") for _ in range(8)])

    assert all(answer.status_code == 201 for answer in answers), [getattr(a, "content", a) for a in answers]
    assert len({answer.json()["bet_id"] for answer in answers}) == 1
    assert sum(1 for answer in answers if "Idempotent-Replayed" not in answer) == 1  # the others replayed it
    assert Bet.objects.count() == 1 and IdempotencyKey.objects.get(key="same").state == "completed"
    assert user_account(user=player, currency="USDC").balance_u == 3_000_000
    _stripes_add_up(round_obj)
    assert_ledger_ok()


def test_one_player_betting_twice_at_once_gets_one_bet(
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    senders = [
        _bet(token_client(player), round_obj.code, {"side": "UP", "stake_u": 2_000_000}, "a"),
        _bet(token_client(player), round_obj.code, {"side": "DOWN", "stake_u": 1_000_000}, "b"),
    ]
    answers = sorted(_at_once(senders), key=lambda answer: answer.status_code)

    assert [answer.status_code for answer in answers] == [201, 409], [a.content for a in answers]
    assert answers[1].json()["type"] == "rounds/already-bet"
    [bet] = Bet.objects.all()
    assert user_account(user=player, currency="USDC").balance_u == 5_000_000 - bet.stake_u
    stored = dict(IdempotencyKey.objects.values_list("response_status", "state"))
    assert stored == {201: "completed", 409: "completed"}  # the refusal is stored as the key's answer
    _stripes_add_up(round_obj)
    assert_ledger_ok()


def test_many_players_at_once_all_bet_and_the_stripes_add_up(
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    players = [FundedPlayerFactory.create(balance_u=5_000_000) for _ in range(24)]
    stakes = {player.pk: 1_000_000 + 1_000 * i for i, player in enumerate(players)}
    senders = [
        _bet(
            token_client(player),
            round_obj.code,
            {"side": "UP" if i % 3 else "DOWN", "stake_u": stakes[player.pk]},
            f"bet-{i}",
        )
        for i, player in enumerate(players)
    ]
    answers = _at_once(senders)

    assert sorted(answer.status_code for answer in answers) == [201] * 24, [a.content for a in answers]
    assert Bet.objects.filter(round=round_obj).count() == 24
    for player in players:
        assert user_account(user=player, currency="USDC").balance_u == 5_000_000 - stakes[player.pk]
    assert PoolStripe.objects.filter(round=round_obj).count() == len({player.pk % 16 for player in players})
    _stripes_add_up(round_obj)
    assert_ledger_ok()


def test_a_key_held_by_a_live_request_of_the_other_path_is_409_and_moves_nothing(
    open_round: Callable[..., Any],
) -> None:
    """`idempotent_call` reserved the key and still runs (it holds the key's advisory lock): 409, as that path says."""
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    body = {"side": "UP", "stake_u": 2_000_000}
    scope = f"POST /v1/rounds/{round_obj.code}/bets"
    fingerprint = request_fingerprint(type("R", (), {"data": body})(), scope)
    IdempotencyKey.objects.create(user=player, key="live", scope=scope, request_hash=fingerprint)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_id(player, "live")])
        response = _bet(token_client(player), round_obj.code, body, "live")()
    finally:
        holder.close()
    assert (response.status_code, response.json()["type"]) == (409, "idempotency/in-progress")
    assert not Bet.objects.exists() and user_account(user=player, currency="USDC").balance_u == 5_000_000
    assert IdempotencyKey.objects.get(key="live").state == "in_progress"
