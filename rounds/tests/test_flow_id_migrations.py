"""The migrations that store flow ids (payouts 0005, webhooks 0002, rounds 0006) on a database with money in it:
rows older than the field get the flow id their traces already carry, and no balance, journal or state changes
(only the new columns are written, so the red-line triggers let the fill through)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ledger.models import Account, Entry, Journal
from payouts.models import Withdrawal
from payouts.tests.helpers import destination_for
from rounds.models import Bet, Round
from webhooks.models import Deposit

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("payouts", "0004_payout_status_check"), ("webhooks", "0001_initial"), ("rounds", "0005_readonly_bets_view")]
AFTER = [("payouts", "0005_withdrawal_flow_id"), ("webhooks", "0002_deposit_flow_id"), ("rounds", "0006_flow_ids")]


def _migrate(targets: list[tuple[str, str]]) -> None:
    """Migrate as the owner (as the release step does), then grant the application role again."""
    from ops.db_roles import setup_db_roles
    from ops.tests.db_role_harness import as_db_owner

    with as_db_owner():
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        setup_db_roles()


@pytest.fixture(autouse=True)
def _fully_migrated_after() -> Iterator[None]:
    """Leave the database at the latest migrations: the tests after these need every table and trigger."""
    yield
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _money() -> dict[str, Any]:
    return {
        "balances": sorted(Account.objects.values_list("name", "currency", "balance_u")),
        "journals": Journal.objects.count(),
        "entries": Entry.objects.count(),
        "withdrawals": sorted(Withdrawal.objects.values_list("pk", "state", "amount_u")),
        "deposits": sorted(Deposit.objects.values_list("pk", "status", "amount_u", "refunded_u")),
        "bets": sorted(Bet.objects.values_list("pk", "stake_u", "payout_u")),
        "rounds": sorted(Round.objects.values_list("code", "status", "up_pool_u", "down_pool_u")),
    }


def test_existing_rows_keep_their_flow_and_no_money_moves(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    player: Any,
    fund: Callable[..., Any],
    assert_ledger_ok: Callable[[], None],
) -> None:
    from payouts.services import withdrawal_request
    from webhooks.deposits import simulated_deposit

    round_obj = open_round("20250908")
    bet = place(round_obj, "UP", 1_000_000)
    deposit_ref = simulated_deposit(user_id=player.public_id, amount_u=5_000_000, currency="USDC").reference
    withdrawal = withdrawal_request(
        user=player, amount_u=2_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    before = _money()
    assert before["journals"] >= 3

    _migrate(BEFORE)  # the database as it was before flow ids were stored (the columns are dropped)
    _migrate(AFTER)

    deposit = Deposit.objects.get(reference=deposit_ref)
    # Only the columns of that state of the schema (later migrations add others, e.g. the payout lease).
    assert Withdrawal.objects.values_list("flow_id", flat=True).get(pk=withdrawal.pk) == f"withdrawal:{withdrawal.pk}"
    assert deposit.flow_id == f"deposit:simulation:{deposit_ref}"
    assert Bet.objects.get(pk=bet.pk).flow_id == f"bet:{bet.bet_id}"
    assert Round.objects.get(pk=round_obj.pk).settlement_flow_id is None  # its settlement has not started
    assert _money() == before
    assert_ledger_ok()
    # New records are born with a new flow id (on the latest schema).
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert withdrawal_request(
        user=player, amount_u=1_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    ).flow_id.startswith("wd-")
