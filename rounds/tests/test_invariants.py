"""The round_pools_equal_stakes invariant, registered with the ledger's reconciliation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.reconciliation import invariant_names, ledger_breaches
from ledger.services import external_account, transfer
from ops.actors import SystemActor

pytestmark = pytest.mark.django_db


def test_invariant_is_registered() -> None:
    assert "round_pools_equal_stakes" in invariant_names()


def test_money_in_a_pool_without_a_bet_is_a_breach(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
) -> None:
    round_obj = open_round("20250908")
    place(round_obj, "UP", 1_000_000)
    assert ledger_breaches() == []
    transfer(
        source=external_account(provider="test", currency="USDC"),
        destination=round_obj.pool_account,
        amount_u=5,
        type="adjustment",
        reference="stray-money",
        actor=SystemActor("test"),
    )
    breaches = [b for b in ledger_breaches() if b.invariant == "round_pools_equal_stakes"]
    assert len(breaches) == 1 and "holds 1000005 but unsettled stakes are 1000000" in breaches[0].detail
