"""Hypothesis: random pools settled through the real SQL on PostgreSQL agree with `settle_pool`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.models import Account
from ledger.services import house_account
from ops.actors import BEAT
from rounds.domain.pool import Result, Side, settle_pool
from rounds.models import Bet, Round
from rounds.settlement import round_settle
from rounds.tests.factories import BetFactory

pytestmark = pytest.mark.django_db

POOLS = st.lists(
    st.tuples(
        st.sampled_from([Side.UP, Side.DOWN]),
        st.one_of(st.integers(min_value=1, max_value=1_000), st.integers(min_value=1, max_value=10**15)),
    ),
    max_size=8,
)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pool=POOLS, close=st.sampled_from(["99.99", "100", "100.01"]), fee_bps=st.sampled_from([0, 1, 100, 10_000]))
def test_sql_settlement_matches_the_reference(
    pool: list[tuple[Side, int]],
    close: str,
    fee_bps: int,
    open_round: Callable[..., Any],
    prices: Any,
    settings: Any,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    settings.MIN_STAKE_U, settings.FEE_BPS = 1, fee_bps
    savepoint = transaction.savepoint()
    try:
        round_obj = open_round("20250908", reference="100")
        bets = [BetFactory.create(round=round_obj, side=side.value, stake_u=stake) for side, stake in pool]
        lock_and_reach_settlement(round_obj)
        prices.set(date(2025, 9, 8), close)
        house_before = house_account(currency="USDC").balance_u

        settled, changed = round_settle(code=round_obj.code, acting_user=BEAT)

        price_result = {"99.99": Result.DOWN, "100": Result.VOID, "100.01": Result.UP}[close]
        expected = settle_pool(
            stakes=[(b.pk, Side(b.side), b.stake_u) for b in bets], result=price_result, fee_bps=fee_bps
        )
        rows = list(Bet.objects.filter(round=settled).values_list("pk", "payout_u"))
        payouts = {pk: payout for pk, payout in rows if payout is not None}
        total = sum(stake for _, stake in pool)
        assert changed and settled.fee_u is not None and settled.breakage_u is not None
        assert len(payouts) == len(rows)  # every bet has its payout
        assert (settled.result, settled.void_reason or None) == (
            expected.result.value,
            expected.void_reason.value if expected.void_reason else None,
        )
        assert payouts == dict(expected.payouts_u)
        assert (settled.fee_u, settled.breakage_u) == (expected.fee_u, expected.breakage_u)
        assert sum(payouts.values()) + settled.fee_u + settled.breakage_u == total
        for bet in bets:
            if settled.status == Round.Status.VOID:
                assert payouts[bet.pk] == bet.stake_u
            elif bet.side == settled.result:
                assert payouts[bet.pk] >= bet.stake_u
            balance = Account.objects.get(pk=bet.account_id).balance_u
            assert balance == payouts[bet.pk]
        assert house_account(currency="USDC").balance_u - house_before == settled.fee_u + settled.breakage_u
        assert Account.objects.get(pk=settled.pool_account_id).balance_u == 0
        assert_ledger_ok()
    finally:
        transaction.savepoint_rollback(savepoint)
