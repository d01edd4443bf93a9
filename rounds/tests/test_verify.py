"""`verify_round`: PASS on a settled round; FAIL naming the part when a bet, the salt or a parameter is altered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from ops.actors import BEAT
from ops.db_guard import service_write_allow
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
        service_write_allow()  # tampering by someone who got past the red-line trigger
        Bet.objects.filter(pk=bet.pk).update(stake_u=bet.stake_u + 1)
    ok, out = verify(settled.code, capsys)
    assert not ok and "FAIL merkle" in out and "FAIL round" in out


def test_altered_payout_fails_payouts(settled: Round, capsys: Any) -> None:
    bet = Bet.objects.filter(round=settled, side="UP").order_by("id").first()
    assert bet is not None and bet.payout_u is not None
    with transaction.atomic():
        service_write_allow()  # tampering by someone who got past the red-line trigger
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
    open_round: Callable[..., Any], place: Callable[..., Any]
) -> None:
    from django.db import DatabaseError, connection

    bet = place(open_round("20250908"), "UP", 2_000_000)
    with connection.cursor() as cursor:  # as in a fresh transaction: the services' permission is not set
        cursor.execute("SELECT set_config('backoffice.service_write', '', true)")
    for column in ("stake_u", "payout_u"):
        with pytest.raises(DatabaseError, match="red line: UPDATE of rounds_bet"), transaction.atomic():
            Bet.objects.filter(pk=bet.pk).update(**{column: 1})
    bet.refresh_from_db()
    assert (bet.stake_u, bet.payout_u) == (2_000_000, None)
