"""The portable settlement (used on the embedded SQLite default) posts exactly what the set-based one does.

Both run here on PostgreSQL over identical rounds; the portable path is the pure-Python reference math
(`settle_pool`) plus one ledger posting, so this also cross-checks the set-based SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger import services as ledger_services
from ledger.models import Account, Entry, Journal
from ops.actors import BEAT
from rounds import settlement
from rounds.domain.pool import Result
from rounds.settlement import round_settle, settlement_preview

pytestmark = pytest.mark.django_db

# (bets, close against a reference of 100)
CASES = {
    "up wins with breakage": ([("UP", 1_000_001), ("UP", 1_000_003), ("UP", 1_000_007), ("DOWN", 1_500_000)], "101"),
    "down wins": ([("UP", 2_000_000), ("DOWN", 1_000_000), ("DOWN", 3_000_001)], "99"),
    "fee capped by a small losing pool": ([("UP", 900_000_000), ("DOWN", 1_000_000)], "101"),
    "one-sided": ([("UP", 1_000_000), ("UP", 2_000_000)], "99"),
    "tie": ([("UP", 1_000_000), ("DOWN", 2_000_000)], "100"),
}


def journal_shape(code: str) -> list[tuple[str, int]]:
    """The settlement's entries by role (player stakes identify players across the two rounds)."""
    journal = Journal.objects.get(reference=f"round:{code}:settlement")
    return sorted((e.account.kind, e.amount_u) for e in Entry.objects.filter(journal=journal).select_related("account"))


@pytest.mark.parametrize("case", list(CASES))
def test_portable_settlement_posts_what_the_set_based_one_does(
    case: str,
    monkeypatch: pytest.MonkeyPatch,
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    lock_and_reach_settlement: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    bets, close = CASES[case]
    outcomes = []
    # Not adjacent sessions: a round's reference is the previous session's close, which round one would set.
    for code, set_based in (("20250908", True), ("20250915", False)):
        monkeypatch.setattr(settlement, "_payouts_in_sql", lambda set_based=set_based: set_based)
        monkeypatch.setattr(ledger_services, "FAST_WRITE", set_based)
        round_obj = open_round(code, reference="100")
        for side, stake in bets:
            place(round_obj, side, stake)
        lock_and_reach_settlement(round_obj)
        prices.set(round_obj.open_at.date(), close)
        preview = settlement_preview(
            code=code, result=Result.VOID if close == "100" else (Result.UP if close == "101" else Result.DOWN)
        )
        settled, changed = round_settle(code=code, acting_user=BEAT)
        assert changed, code
        assert Account.objects.get(pk=settled.pool_account_id).balance_u == 0
        payouts = sorted(settled.bets.values_list("stake_u", "payout_u"))
        outcomes.append(
            (
                settled.status,
                settled.result,
                settled.fee_u,
                settled.breakage_u,
                payouts,
                journal_shape(code),
                preview.payouts_total_u,
                preview.fee_u,
            )
        )
        assert_ledger_ok()
    assert outcomes[0] == outcomes[1]
