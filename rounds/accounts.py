"""The rounds' ledger accounts, named here: a round's pool and its stripes.

The ledger knows account kinds, not products: rounds opens its accounts with the ledger's generic opener
(`ledger.services.account_get_or_create`) under names it owns, `round:<code>:pool` and
`round:<code>:pool:<stripe>` (all of kind ROUND_POOL; `rounds.invariants` reads them back by name).
"""

from __future__ import annotations

from ledger.errors import InvalidAmount
from ledger.models import Account
from ledger.services import account_get_or_create


def round_pool_account(*, code: str, currency: str) -> Account:
    """Return the pool account holding the stakes of one round."""
    return account_get_or_create(name=f"round:{code}:pool", currency=currency, kind=Account.Kind.ROUND_POOL)


def round_pool_stripe_account(*, code: str, currency: str, stripe: int) -> Account:
    """Return stripe `stripe` of a round's pool (`round:<code>:pool:<stripe>`): stakes before lock land here.

    Bets of one round credit different stripes, so no balance row is written by every bet; the round folds
    its stripes into `round_pool_account` when it locks (`rounds.pools`). A stripe is a round pool account.
    """
    return account_get_or_create(
        name=round_pool_stripe_name(code=code, stripe=stripe), currency=currency, kind=Account.Kind.ROUND_POOL
    )


def round_pool_stripe_name(*, code: str, stripe: int) -> str:
    """Return the name of stripe `stripe` of a round's pool (`round:<code>:pool:<stripe>`)."""
    if isinstance(stripe, bool) or not isinstance(stripe, int) or stripe < 0:
        raise InvalidAmount(f"A pool stripe is a whole number from 0, not {stripe!r}.")
    return f"round:{code}:pool:{stripe}"


def round_pool_stripes(*, code: str, currency: str) -> list[Account]:
    """Return the pool stripe accounts of one round, in stripe order (`round_pool_stripe_account`)."""
    prefix = f"round:{code}:pool:"
    stripes = Account.objects.filter(kind=Account.Kind.ROUND_POOL, currency=currency, name__startswith=prefix)
    return sorted(stripes, key=lambda account: int(account.name.removeprefix(prefix)))
