"""Factories for money in the ledger: players with funded wallets.

Money only ever enters through `ledger.services.transfer` (from the test PSP's external account, by a
`SystemActor`), the way a deposit would post it: no factory writes a balance or an entry row.
"""

from __future__ import annotations

import itertools
from typing import Any

from accounts.models import User
from accounts.tests.factories import UserFactory
from ledger.models import Journal
from ledger.services import external_account, transfer, user_account
from ops.actors import SystemActor

FUNDING_PROVIDER = "test"
_funding = itertools.count(1)


def fund_player(user: User, amount_u: int, currency: str = "USDC") -> Journal:
    """Credit `amount_u` to the player's available balance from psp:test, through the ledger's one door."""
    return transfer(
        source=external_account(provider=FUNDING_PROVIDER, currency=currency),
        destination=user_account(user=user, currency=currency),
        amount_u=amount_u,
        type="deposit",
        reference=f"test-fund:{user.pk}:{next(_funding)}:{amount_u}",
        actor=SystemActor("test"),
    )


class FundedPlayerFactory(UserFactory):
    """A player with `balance_u` available in `currency` (100 USDC unless told), posted as a deposit.

    `FundedPlayerFactory(balance_u=0)` is a player with no money yet.
    """

    balance_u = 100_000_000
    currency = "USDC"

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, balance_u: int, currency: str, **kwargs: Any) -> User:
        user: User = super()._create(model_class, *args, **kwargs)
        if balance_u:
            fund_player(user, balance_u, currency)
        return user
