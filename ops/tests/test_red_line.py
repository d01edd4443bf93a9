"""The red line enforced by PostgreSQL: a raw UPDATE of a withdrawal's state or a deposit's money is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from ops.db_guard import service_write_allow
from payouts.models import Withdrawal
from payouts.services import withdrawal_request
from payouts.tests.helpers import balances, destination_for, snapshot
from webhooks.models import Deposit

pytestmark = pytest.mark.django_db


def _raw(sql: str, params: list[Any]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_update_of_a_withdrawal_state_is_refused(
    player: Any, fund: Callable[..., Any], assert_ledger_ok: Callable[[], None]
) -> None:
    fund(player, 50_000_000)
    withdrawal = withdrawal_request(
        user=player, amount_u=20_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    before, money = snapshot(), balances(player)

    with pytest.raises(DatabaseError, match="red line: UPDATE of payouts_withdrawal"):
        _raw("UPDATE payouts_withdrawal SET state = 'paid' WHERE id = %s", [withdrawal.pk])
    with pytest.raises(DatabaseError, match="red line"), transaction.atomic():
        Withdrawal.objects.filter(pk=withdrawal.pk).update(amount_u=1)

    assert snapshot() == before and balances(player) == money
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == Withdrawal.State.REQUESTED
    assert_ledger_ok()


@pytest.mark.django_db(transaction=True)  # the permission must end with a real, committed transaction
def test_other_columns_and_service_transactions_pass(player: Any, fund: Callable[..., Any]) -> None:
    fund(player, 50_000_000)
    withdrawal = withdrawal_request(
        user=player, amount_u=20_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    _raw("UPDATE payouts_withdrawal SET psp_reference = 'x' WHERE id = %s", [withdrawal.pk])  # not guarded
    with transaction.atomic():
        service_write_allow()
        Withdrawal.objects.filter(pk=withdrawal.pk).update(state="approved")
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == "approved"
    # The permission ends with its transaction.
    with pytest.raises(DatabaseError, match="red line"):
        _raw("UPDATE payouts_withdrawal SET state = 'paid' WHERE id = %s", [withdrawal.pk])


def test_raw_update_of_a_deposit_money_column_is_refused(player: Any) -> None:
    deposit = Deposit.objects.create(
        provider="stripe", reference="dep-red-line", user=player, amount_u=10_000_000, currency="USDC"
    )
    for column in ("amount_u", "refunded_u", "charged_back_u"):
        with pytest.raises(DatabaseError, match="red line: UPDATE of webhooks_deposit"):
            _raw(f"UPDATE webhooks_deposit SET {column} = {column} + 1 WHERE id = %s", [deposit.pk])  # noqa: S608
    deposit.refresh_from_db()
    assert (deposit.amount_u, deposit.refunded_u, deposit.charged_back_u) == (10_000_000, 0, 0)


@pytest.mark.parametrize("setting", ["off", "", "ON", "true"])
def test_any_setting_but_the_services_on_is_refused(player: Any, setting: str) -> None:
    """The trigger's WHEN tests the setting as its function does: only exactly 'on' lets a money change through."""
    deposit = Deposit.objects.create(
        provider="stripe", reference="dep-red-line-setting", user=player, amount_u=10_000_000, currency="USDC"
    )
    with pytest.raises(DatabaseError, match="red line: UPDATE of webhooks_deposit"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('backoffice.service_write', %s, true)", [setting])
            cursor.execute("UPDATE webhooks_deposit SET amount_u = 1 WHERE id = %s", [deposit.pk])
    deposit.refresh_from_db()
    assert deposit.amount_u == 10_000_000


def test_every_red_line_trigger_tests_the_setting_in_its_when() -> None:
    """The migrated triggers carry the setting in their WHEN (`ops.db_guard.red_line_trigger`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname LIKE '%%_red_line'"
        )
        triggers = dict(cursor.fetchall())
    assert set(triggers) == {"rounds_bet", "webhooks_deposit", "payouts_withdrawal"}
    for definition in triggers.values():
        assert "current_setting('backoffice.service_write'::text, true)" in definition, definition
