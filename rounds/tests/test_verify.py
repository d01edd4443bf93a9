"""`verify_round`: PASS on a settled round; FAIL naming the part when a bet, the salt or a parameter is altered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from ops.actors import BEAT
from rounds.models import Bet, Round

pytestmark = pytest.mark.django_db


@pytest.fixture
def settled(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
) -> Round:
    from rounds.settlement import round_settle

    round_obj = open_round("20250908", reference="100")
    for side, stake in [("UP", 1_000_000), ("UP", 2_500_000), ("DOWN", 1_700_001), ("DOWN", 1_000_000)]:
        place(round_obj, side, stake)
    lock_and_reach_settlement(round_obj)
    prices.set(round_obj.open_at.date(), "100.25")
    settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)
    return settled


def superuser_past_the_red_line() -> None:
    """Tampering as only a superuser can: triggers off for this transaction (`session_replication_role`),
    with the test database owner's rights (the application role the suite runs as may not), until the
    transaction ends (the red line's triggers would refuse the change)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL SESSION AUTHORIZATION DEFAULT")
        cursor.execute("SET LOCAL session_replication_role = replica")


def verify(code: str, capsys: Any) -> tuple[bool, str]:
    try:
        call_command("verify_round", "--code", code)
    except CommandError as exc:
        return False, capsys.readouterr().out + str(exc)
    return True, capsys.readouterr().out


def test_settled_round_passes(settled: Round, capsys: Any) -> None:
    ok, out = verify(settled.code, capsys)
    assert ok and f"PASS round {settled.code}" in out


def test_altered_bet_fails_merkle(settled: Round, capsys: Any) -> None:
    bet = Bet.objects.filter(round=settled).order_by("id").first()
    assert bet is not None
    with transaction.atomic():
        superuser_past_the_red_line()
        Bet.objects.filter(pk=bet.pk).update(stake_u=bet.stake_u + 1)
    ok, out = verify(settled.code, capsys)
    assert not ok and "FAIL merkle" in out and "FAIL round" in out


def test_altered_payout_fails_payouts(settled: Round, capsys: Any) -> None:
    bet = Bet.objects.filter(round=settled, side="UP").order_by("id").first()
    assert bet is not None and bet.payout_u is not None
    with transaction.atomic():
        superuser_past_the_red_line()
        Bet.objects.filter(pk=bet.pk).update(payout_u=bet.payout_u + 1)
    ok, out = verify(settled.code, capsys)
    assert not ok and "FAIL payouts" in out and "FAIL merkle" not in out


def test_altered_salt_fails_commit(settled: Round, capsys: Any) -> None:
    assert settled.reveal is not None
    reveal = {**settled.reveal, "salt": "0" * 64}
    Round.objects.filter(pk=settled.pk).update(reveal=reveal)
    ok, out = verify(settled.code, capsys)
    assert not ok and "FAIL commit" in out


@pytest.mark.parametrize("field, value", [("fee_bps", 0), ("reference_close", "100.5"), ("min_stake_u", 1)])
def test_altered_parameter_fails_commit(settled: Round, capsys: Any, field: str, value: Any) -> None:
    assert settled.reveal is not None
    reveal = {**settled.reveal, "params": {**settled.reveal["params"], field: value}}
    Round.objects.filter(pk=settled.pk).update(reveal=reveal)
    ok, out = verify(settled.code, capsys)
    assert not ok and "FAIL commit" in out


def test_void_and_forced_rounds_pass(
    force_settle: Callable[..., Any],
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
    capsys: Any,
) -> None:
    from rounds.settlement import round_settle

    one_sided = open_round("20250908")
    place(one_sided, "UP", 1_000_000)
    lock_and_reach_settlement(one_sided)
    round_settle(code=one_sided.code, acting_user=BEAT)
    assert verify(one_sided.code, capsys)[0]

    forced = open_round("20250909", reference="100")
    place(forced, "UP", 1_000_000)
    place(forced, "DOWN", 3_000_000)
    lock_and_reach_settlement(forced)
    force_settle(forced, "DOWN")
    ok, out = verify(forced.code, capsys)
    assert ok and f"forced by {force_settle.maker.email}" in out  # type: ignore[attr-defined]

    # A forced round whose revealed result was changed afterwards fails.
    forced.refresh_from_db()
    Round.objects.filter(pk=forced.pk).update(reveal={**forced.reveal, "result": "UP"})
    assert not verify(forced.code, capsys)[0]


def test_unsettled_round_fails(open_round: Callable[..., Any], capsys: Any) -> None:
    round_obj = open_round("20250908")
    ok, out = verify(round_obj.code, capsys)
    assert not ok and "nothing revealed yet" in out


def test_raw_update_of_a_bet_is_refused_by_the_database(
    open_round: Callable[..., Any], place: Callable[..., Any], make_player: Any
) -> None:
    """Stake, side, account, round or a payout of an OPEN round: refused, the old services' flag set or not."""
    from django.db import DatabaseError

    from ledger.services import house_account

    bet = place(open_round("20250908"), "UP", 2_000_000)
    changes = {
        "stake_u": 1,
        "side": "DOWN",
        "account_id": house_account(currency="USDC").pk,
        "round_id": bet.round_id + 1_000,  # its foreign key is checked at commit; the red line at once
        "player_id": make_player().pk,
        "payout_u": 1,  # only a settling (LOCKED) round's bets get a payout
    }
    for column, value in changes.items():
        with pytest.raises(DatabaseError, match="red line: UPDATE of rounds_bet"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('backoffice.service_write', 'on', true)")
            Bet.objects.filter(pk=bet.pk).update(**{column: value})
    fresh = Bet.objects.get(pk=bet.pk)
    assert (fresh.stake_u, fresh.side, fresh.account_id, fresh.round_id, fresh.player_id, fresh.payout_u) == (
        2_000_000,
        "UP",
        bet.account_id,
        bet.round_id,
        bet.player_id,
        None,
    )


def test_a_settled_payout_is_never_changed_again(settled: Round) -> None:
    """Once set (at settlement, round LOCKED), a payout never changes again: up, to zero or back to unset."""
    from django.db import DatabaseError

    bet = Bet.objects.filter(round=settled, payout_u__gt=0).order_by("id").first()
    assert bet is not None and bet.payout_u is not None
    for value in (bet.payout_u + 1, 0, None):
        with pytest.raises(DatabaseError, match="red line: UPDATE of rounds_bet"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('backoffice.service_write', 'on', true)")
            Bet.objects.filter(pk=bet.pk).update(payout_u=value)
    assert Bet.objects.get(pk=bet.pk).payout_u == bet.payout_u
