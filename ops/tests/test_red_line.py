"""The red line enforced by PostgreSQL by content: raw UPDATEs of money rows are refused, flag or no flag.

Every attempt first sets the old services' flag (`set_config('backoffice.service_write', 'on', true)`),
which any session can do: it must open nothing. Each refusal leaves nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from payouts.models import Withdrawal
from payouts.services import withdrawal_request
from payouts.tests.helpers import balances, destination_for, snapshot
from webhooks.models import Deposit

pytestmark = pytest.mark.django_db

FLAG = "SELECT set_config('backoffice.service_write', 'on', true)"


def _raw(*statements: tuple[str, list[Any]]) -> None:
    """Run statements in one transaction (a savepoint in a test transaction), the old flag set first."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FLAG)
        for sql, params in statements:
            cursor.execute(sql, params)


def _state(withdrawal: Withdrawal) -> str:
    return str(Withdrawal.objects.values_list("state", flat=True).get(pk=withdrawal.pk))


def test_raw_updates_of_a_withdrawal_are_refused_with_the_flag_set(
    player: Any, fund: Callable[..., Any], assert_ledger_ok: Callable[[], None]
) -> None:
    fund(player, 50_000_000)
    withdrawal = withdrawal_request(
        user=player, amount_u=20_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    before, money = snapshot(), balances(player)

    with pytest.raises(DatabaseError, match="red line: UPDATE of payouts_withdrawal .* requested -> paid"):
        _raw(("UPDATE payouts_withdrawal SET state = 'paid' WHERE id = %s", [withdrawal.pk]))
    for column, value in (("amount_u", 1), ("amount_u", 40_000_000), ("currency", "'USD'")):
        with pytest.raises(DatabaseError, match="red line: UPDATE of payouts_withdrawal"):
            _raw((f"UPDATE payouts_withdrawal SET {column} = {value} WHERE id = %s", [withdrawal.pk]))  # noqa: S608
    with pytest.raises(DatabaseError, match="red line"), transaction.atomic():
        Withdrawal.objects.filter(pk=withdrawal.pk).update(amount_u=1)

    assert snapshot() == before and balances(player) == money
    assert _state(withdrawal) == Withdrawal.State.REQUESTED
    assert_ledger_ok()


@pytest.mark.django_db(transaction=True)  # the money a state calls for is checked at commit
def test_a_withdrawal_marked_paid_without_its_burn_is_refused_at_commit(
    player: Any, fund: Callable[..., Any], assert_ledger_ok: Callable[[], None]
) -> None:
    """requested -> approved -> payout_submitted are legal and move no money; -> paid needs the burn journal."""
    fund(player, 50_000_000)
    withdrawal = withdrawal_request(
        user=player, amount_u=20_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    _raw(
        ("UPDATE payouts_withdrawal SET state = 'approved' WHERE id = %s", [withdrawal.pk]),
        ("UPDATE payouts_withdrawal SET state = 'payout_submitted' WHERE id = %s", [withdrawal.pk]),
    )
    before, money = snapshot(), balances(player)
    for target in ("paid", "refunded"):  # paid needs its burn, refunded its release
        with pytest.raises(DatabaseError, match=f"red line: withdrawal {withdrawal.pk} is {target} but its"):
            _raw((f"UPDATE payouts_withdrawal SET state = '{target}' WHERE id = %s", [withdrawal.pk]))  # noqa: S608
    with pytest.raises(DatabaseError, match="payout_submitted -> requested is not a transition"):
        _raw(("UPDATE payouts_withdrawal SET state = 'requested' WHERE id = %s", [withdrawal.pk]))
    assert snapshot() == before and balances(player) == money
    assert _state(withdrawal) == Withdrawal.State.PAYOUT_SUBMITTED
    assert_ledger_ok()


@pytest.mark.django_db(transaction=True)
def test_a_withdrawal_is_born_requested_with_its_hold(
    player: Any, fund: Callable[..., Any], assert_ledger_ok: Callable[[], None]
) -> None:
    """An INSERT of an approved withdrawal, or of a requested one with no hold journal, is refused."""
    fund(player, 50_000_000)
    before, money = snapshot(), balances(player)
    insert = (
        "INSERT INTO payouts_withdrawal (user_id, amount_u, currency, provider, destination, state,"
        " payout_generation, psp_reference, flow_id, payout_lease_owner)"
        " VALUES (%s, 20000000, 'USDC', 'adyen', '{}', %s, 0, '', %s, '')"
    )
    with pytest.raises(DatabaseError, match="a withdrawal is born requested, not approved"):
        _raw((insert, [player.pk, "approved", "wd-insider-1"]))
    with pytest.raises(DatabaseError, match="is requested but its hold journal"):
        _raw((insert, [player.pk, "requested", "wd-insider-2"]))
    assert snapshot() == before and balances(player) == money
    assert not Withdrawal.objects.exists()
    assert_ledger_ok()


def test_raw_updates_of_a_deposit_money_column_are_refused_with_the_flag_set(player: Any) -> None:
    deposit = Deposit.objects.create(
        provider="stripe", reference="dep-red-line", user=player, amount_u=10_000_000, currency="USDC"
    )
    for sql in (
        "UPDATE webhooks_deposit SET amount_u = amount_u + 1 WHERE id = %s",
        "UPDATE webhooks_deposit SET currency = 'USD' WHERE id = %s",
        "UPDATE webhooks_deposit SET refunded_u = refunded_u + 1 WHERE id = %s",  # no refund journal
        "UPDATE webhooks_deposit SET charged_back_u = charged_back_u + 1 WHERE id = %s",  # no chargeback journal
        "UPDATE webhooks_deposit SET refunded_u = -1 WHERE id = %s",  # never down
    ):
        with pytest.raises(DatabaseError, match="red line: UPDATE of webhooks_deposit"):
            _raw((sql, [deposit.pk]))
    deposit.refresh_from_db()
    assert (deposit.amount_u, deposit.currency, deposit.refunded_u, deposit.charged_back_u) == (
        10_000_000,
        "USDC",
        0,
        0,
    )


def test_unguarded_columns_still_change(player: Any, fund: Callable[..., Any]) -> None:
    fund(player, 50_000_000)
    withdrawal = withdrawal_request(
        user=player, amount_u=20_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    _raw(("UPDATE payouts_withdrawal SET psp_reference = 'x' WHERE id = %s", [withdrawal.pk]))
    assert Withdrawal.objects.get(pk=withdrawal.pk).psp_reference == "x"


def test_no_trigger_or_function_reads_the_old_flag() -> None:
    """The red line's triggers and functions test content, never a setting a session can set."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE tgname LIKE '%%red_line%%' AND NOT tgisinternal"
        )
        triggers = cursor.fetchall()
        cursor.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE proname LIKE '%%red_line%%'"
            " AND pronamespace = 'public'::regnamespace"
        )
        functions = cursor.fetchall()
    assert {table for table, _, _ in triggers} == {"rounds_bet", "webhooks_deposit", "payouts_withdrawal"}
    assert len(functions) >= 5
    for _, name, definition in triggers:
        assert "current_setting" not in definition and "service_write" not in definition, name
    for name, source in functions:
        assert "current_setting" not in source and "service_write" not in source, name
