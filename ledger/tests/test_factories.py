"""The funded-player factory: money in through the ledger's one door, the books balanced."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from accounts.tests.factories import StaffFactory, UserFactory
from ledger.models import Account, Journal
from ledger.services import external_account, user_account
from ledger.tests.factories import FundedPlayerFactory, fund_player

pytestmark = pytest.mark.django_db


def test_a_funded_player_has_100_usdc_posted_as_a_deposit(assert_ledger_ok: Any) -> None:
    player = FundedPlayerFactory.create()

    assert not player.is_staff
    assert user_account(user=player, currency="USDC").balance_u == 100_000_000
    journal = Journal.objects.get()
    assert (journal.type, journal.reference.startswith(f"test-fund:{player.pk}:")) == ("deposit", True)
    assert external_account(provider="test", currency="USDC").balance_u == -100_000_000
    assert_ledger_ok()


def test_amount_currency_and_no_money(assert_ledger_ok: Any) -> None:
    rich = FundedPlayerFactory.create(balance_u=2500, currency="USD")
    broke = FundedPlayerFactory.create(balance_u=0)

    assert user_account(user=rich, currency="USD").balance_u == 2500
    assert not Account.objects.filter(owner=broke).exists()
    assert Journal.objects.count() == 1
    assert_ledger_ok()


def test_funding_twice_posts_two_journals(assert_ledger_ok: Any) -> None:
    player = UserFactory.create()
    fund_player(player, 1_000)
    fund_player(player, 1_000)

    assert user_account(user=player, currency="USDC").balance_u == 2_000
    assert Journal.objects.filter(type="deposit").count() == 2
    assert_ledger_ok()


def test_staff_in_a_role(assert_ledger_ok: Any) -> None:
    operator = StaffFactory.create(role="finance")

    assert operator.is_staff and list(operator.groups.values_list("name", flat=True)) == ["finance"]
    assert Group.objects.filter(name="finance").exists()
    assert not Account.objects.filter(owner=operator).exists()
    assert_ledger_ok()
