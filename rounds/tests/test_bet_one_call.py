"""A bet in one call (`rounds_bet_place`, migration 0012): its refusals change nothing, its key replays, its
posting is the one `ledger.services.transfer` made, and random sequences of bets keep the stripes exact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import InsufficientFunds
from ledger.models import Account, Entry, Journal
from ledger.services import _fingerprint, _transfer_legs, transfer, user_account
from ledger.tests.factories import FundedPlayerFactory
from ops.models import IdempotencyKey, Switch
from rounds import errors
from rounds.betting import bet_place
from rounds.models import Bet, PoolStripe, Round
from rounds.pools import FIGURES, POOL_STRIPES, pools_live, stripe_account
from rounds.tests.factories import pool_held

pytestmark = pytest.mark.django_db


def snapshot() -> dict[str, Any]:
    """Everything a bet may touch: balances, accounts, journals, entries, bets, stripes, idempotency keys."""
    return {
        "accounts": list(Account.objects.order_by("pk").values_list("name", "currency", "balance_u")),
        "journals": list(Journal.objects.order_by("pk").values_list("reference", "fingerprint")),
        "entries": Entry.objects.count(),
        "bets": list(Bet.objects.order_by("pk").values_list("bet_id", "player_id", "side", "stake_u", "leaf")),
        "stripes": list(PoolStripe.objects.order_by("pk").values_list("round_id", "stripe", *FIGURES)),
        "keys": keys(),
    }


def keys() -> list[tuple[Any, ...]]:
    return list(
        IdempotencyKey.objects.order_by("pk").values_list(
            "user_id", "key", "scope", "state", "response_status", "response_body"
        )
    )


def post(client: Any, code: str, body: dict[str, Any], key: str | None) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(f"/v1/rounds/{code}/bets", body, format="json", **headers)


BET = {"side": "UP", "stake_u": 2_000_000}


@pytest.mark.parametrize(
    ("setup", "body", "status", "problem"),
    [
        ("paused", BET, 503, "rounds/betting-paused"),
        ("no round", BET, 404, "rounds/not-found"),
        ("locked", BET, 409, "rounds/locked"),
        ("", {"side": "UP", "stake_u": 999_999}, 422, "rounds/stake-too-small"),
        ("already bet", BET, 409, "rounds/already-bet"),
        ("", {"side": "DOWN", "stake_u": 5_000_001}, 422, "ledger/insufficient-funds"),
        ("no account", BET, 422, "ledger/insufficient-funds"),
    ],
)
def test_each_refusal_changes_nothing_but_its_stored_answer(
    setup: str,
    body: dict[str, Any],
    status: int,
    problem: str,
    open_round: Callable[..., Any],
    api_client_for: Callable[..., Any],
    make_player: Callable[..., Any],
    clock: Any,
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    player = make_player() if setup == "no account" else FundedPlayerFactory.create(balance_u=5_000_000)
    other = FundedPlayerFactory.create(balance_u=5_000_000)
    assert post(api_client_for(other), round_obj.code, {"side": "DOWN", "stake_u": 3_000_000}, "o").status_code == 201
    client = api_client_for(player)
    code = "20250909" if setup == "no round" else round_obj.code
    if setup == "paused":
        Switch.objects.create(name=Switch.Name.BETTING_PAUSED, on=True, reason="incident")
    if setup == "locked":
        clock.set(round_obj.lock_at)
    if setup == "already bet":
        assert post(client, code, {"side": "DOWN", "stake_u": 1_000_000}, "first").status_code == 201
    before = snapshot()

    refused = post(client, code, body, "k")

    assert refused.status_code == status, refused.content
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["type"] == problem and "Idempotent-Replayed" not in refused
    after = snapshot()
    stored = after.pop("keys")
    assert after == {name: value for name, value in before.items() if name != "keys"}  # nothing moved
    if status >= 500:  # the pause: not an answer to keep; the key is free for the retry once it is lifted
        assert stored == before["keys"]
        Switch.objects.filter(name=Switch.Name.BETTING_PAUSED).update(on=False)
        retried = post(client, code, body, "k")
        assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
        assert Bet.objects.filter(player=player).count() == 1
        return
    assert stored == [
        *before["keys"],
        (player.pk, "k", f"POST /v1/rounds/{code}/bets", "completed", status, refused.json()),
    ]
    if problem == "ledger/insufficient-funds":
        have = 0 if setup == "no account" else 5_000_000
        assert (refused.json()["balance_u"], refused.json()["required_u"]) == (have, body["stake_u"])
    # The same request again: the stored refusal, replayed; nothing else.
    again = post(client, code, body, "k")
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (status, refused.json(), "true")
    assert again["Content-Type"] == "application/problem+json"
    assert snapshot() == {**before, "keys": stored}
    assert_ledger_ok()


def test_a_bet_replays_and_a_reused_key_is_refused_with_nothing_changed(
    open_round: Callable[..., Any],
    api_client_for: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    client = api_client_for(player)
    first = post(client, round_obj.code, BET, "k-1")
    assert first.status_code == 201, first.content
    bet = Bet.objects.get()
    assert first.json() == {
        "bet_id": str(bet.bet_id),
        "round": round_obj.code,
        "round_status": "OPEN",
        "side": "UP",
        "stake_u": 2_000_000,
        "currency": "USDC",
        "placed_at": bet.placed_at.isoformat().replace("+00:00", "Z"),
        "payout_u": None,
    }
    assert list(first.json()) == [
        "bet_id",
        "round",
        "round_status",
        "side",
        "stake_u",
        "currency",
        "placed_at",
        "payout_u",
    ]
    [(_, _, _, state, stored_status, stored_body)] = keys()
    assert (state, stored_status, stored_body) == ("completed", 201, first.json())
    before = snapshot()

    again = post(client, round_obj.code, BET, "k-1")
    other_body = post(client, round_obj.code, {"side": "DOWN", "stake_u": 2_000_000}, "k-1")
    invalid_body = post(client, round_obj.code, {"side": "UP", "stake_u": "lots"}, "k-1")
    other_round = post(client, "20250909", BET, "k-1")
    missing = post(client, round_obj.code, BET, None)
    too_long = post(client, round_obj.code, BET, "x" * 256)
    invalid_new_key = post(client, round_obj.code, {"side": "UP", "stake_u": "lots"}, "k-2")

    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (201, first.json(), "true")
    for reused in (other_body, invalid_body, other_round):
        assert (reused.status_code, reused.json()["type"]) == (422, "idempotency/key-reused")
    assert (missing.status_code, missing.json()["type"]) == (400, "idempotency/key-required")
    assert (too_long.status_code, too_long.json()["type"]) == (400, "idempotency/key-invalid")
    assert (invalid_new_key.status_code, invalid_new_key.json()["type"]) == (400, "validation-error")
    assert "stake_u" in invalid_new_key.json()["errors"]
    assert snapshot() == before  # not even the invalid body's key is stored
    assert_ledger_ok()


def test_a_new_bet_is_one_call_and_nothing_after_it(
    open_round: Callable[..., Any],
    api_client_for: Callable[..., Any],
) -> None:
    """The view's statements: one call; before it only what the middleware and authentication read."""
    round_obj = open_round("20250908")
    client = api_client_for(FundedPlayerFactory.create(balance_u=5_000_000))
    with CaptureQueriesContext(connection) as captured:
        assert post(client, round_obj.code, BET, "one").status_code == 201
    statements = [query["sql"] for query in captured.captured_queries if "SAVEPOINT" not in query["sql"]]
    calls = [sql for sql in statements if "rounds_bet_place" in sql]
    assert len(calls) == 1
    position = statements.index(calls[0])
    assert statements[position + 1 :] == []  # no re-read, no key update: the answer came back from the call
    assert len(statements[:position]) <= 2  # the token, the maintenance switch (or less, where cached)


def test_the_posting_is_the_one_transfer_made_so_it_replays_as_a_transfer(
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    """Same type, reference, fingerprint, metadata and actor as `ledger.services.transfer` gave `ledger_post`."""
    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    bet = bet_place(user=player, code=round_obj.code, side="DOWN", stake_u=1_234_567)
    journal = Journal.objects.get(reference=f"bet:{bet.bet_id}")
    source, stripe = (
        user_account(user=player, currency="USDC"),
        stripe_account(round_obj=round_obj, player_id=player.pk),
    )
    assert (journal.type, journal.actor_id, journal.actor_label) == ("bet", player.pk, player.email)
    assert journal.metadata == {"round": round_obj.code, "side": "DOWN", "bet_id": str(bet.bet_id)}
    assert journal.fingerprint == _fingerprint("bet", _transfer_legs(source, stripe, 1_234_567), None)
    assert bet.account_id == source.pk and stripe.name == f"round:{round_obj.code}:pool:{player.pk % POOL_STRIPES}"
    replayed = transfer(
        source=source,
        destination=stripe,
        amount_u=1_234_567,
        type="bet",
        reference=f"bet:{bet.bet_id}",
        actor=player,
        metadata=journal.metadata,
    )
    assert replayed.replayed and replayed.pk == journal.pk
    assert user_account(user=player, currency="USDC").balance_u == 5_000_000 - 1_234_567
    assert_ledger_ok()


def test_a_key_left_in_progress_by_a_dead_request_is_run_once(
    open_round: Callable[..., Any],
    api_client_for: Callable[..., Any],
) -> None:
    """A row `idempotent_call` reserved and whose request died (nobody holds its lock) is taken over."""
    from ops.idempotency import request_fingerprint

    round_obj = open_round("20250908")
    player = FundedPlayerFactory.create(balance_u=5_000_000)
    scope = f"POST /v1/rounds/{round_obj.code}/bets"
    fingerprint = request_fingerprint(type("R", (), {"data": BET})(), scope)
    IdempotencyKey.objects.create(user=player, key="dead", scope=scope, request_hash=fingerprint)
    response = post(api_client_for(player), round_obj.code, BET, "dead")
    assert response.status_code == 201, response.content
    assert IdempotencyKey.objects.get(key="dead").state == "completed"
    assert Bet.objects.filter(player=player).count() == 1


ATTEMPTS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),  # which of 4 players
        st.sampled_from(["UP", "DOWN"]),
        st.sampled_from([1, 999_999, 1_000_000, 1_500_001, 3_000_000, 4_000_000]),  # some too small, some too big
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(attempts=ATTEMPTS)
def test_random_bets_and_refusals_keep_the_stripes_equal_to_the_bets(
    attempts: list[tuple[int, str, int]],
    open_round: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    savepoint = transaction.savepoint()
    try:
        round_obj = open_round("20250908")
        players = FundedPlayerFactory.create_batch(4, balance_u=3_000_000)
        placed: dict[int, tuple[str, int]] = {}
        for index, side, stake_u in attempts:
            player = players[index]
            expected: type[Exception] | None = None  # in the order the checks are made
            if stake_u < round_obj.min_stake_u:
                expected = errors.StakeTooSmall
            elif player.pk in placed:
                expected = errors.AlreadyBet
            elif stake_u > 3_000_000:
                expected = InsufficientFunds
            before = snapshot()
            if expected is None:
                bet_place(user=player, code=round_obj.code, side=side, stake_u=stake_u)
                placed[player.pk] = (side, stake_u)
            else:
                with pytest.raises(expected):
                    bet_place(user=player, code=round_obj.code, side=side, stake_u=stake_u)
                assert snapshot() == before
        stored = Round.objects.get(pk=round_obj.pk)
        up = [stake for side, stake in placed.values() if side == "UP"]
        down = [stake for side, stake in placed.values() if side == "DOWN"]
        assert pools_live(round_obj=stored) == {
            "up_pool_u": sum(up),
            "down_pool_u": sum(down),
            "up_bets": len(up),
            "down_bets": len(down),
        }
        assert pool_held(stored) == sum(up) + sum(down) == (Bet.objects.aggregate(total=Sum("stake_u"))["total"] or 0)
        for player in players:
            spent = placed.get(player.pk, ("", 0))[1]
            assert user_account(user=player, currency="USDC").balance_u == 3_000_000 - spent
        assert Journal.objects.filter(type="bet").count() == len(placed)
        assert_ledger_ok()
    finally:
        transaction.savepoint_rollback(savepoint)
