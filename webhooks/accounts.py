"""The deposits' ledger accounts, named here: the stripes of a PSP's clearing account.

Every deposit credit debits its provider's clearing account, and a posting holds the row lock of every
account it touches until its transaction commits. With one clearing account per provider that row was
the deposits' hot row: credits of one provider queued on it one commit at a time (issue 22: signed
custody deposits at 0.09 of bare `transfer()` credits), as bets once queued on a round's pool.

So a deposit credit debits one of `CLEARING_STRIPES` stripe accounts of its provider, chosen by the
player's id, `psp:<provider>:<stripe>` (kind EXTERNAL, may go negative, like the clearing account
`psp:<provider>` of `ledger.services.external_account`), opened with the ledger's generic opener
`account_get_or_create` under names this app owns, as `rounds.accounts` names a round's pool stripes.

Why stripes, not small set-based batches: a batch would have to gather deposits of several requests
into one transaction (a collector process or a wait in the request), so a deposit's credit would no
longer be its own short transaction in its own request (the in-request credit and its exactly-once
protocol, `webhooks.processing.webhook_event_credit_now`, stay as they are), and a refusal of one
deposit would refuse or retry the batch. A stripe changes only which account a credit debits: the same
journal, the same reference, the same locks in the same order, one more account per stripe in the books.

Why by the player's id: a player's deposits lock the player's available account anyway, so choosing the
stripe by player adds no new conflict; different players spread over the stripes.

Why 64 (a round has 16 pool stripes): a credit holds its stripe's row lock until its commit, a few
statements after the posting, and on a loaded web process the time between them is spent waiting for
the interpreter, not the database. With k credits in flight over N stripes, a credit meets another on its
stripe with probability about 1 - (1 - 1/N)^(k-1): 62% for 16 credits over 16 stripes, 21% over 64
(bench/webhooks.py sends 16 at once; sampled `pg_locks` during its deposits showed no credit waiting on a
lock at 64, where before the stripes most active backends waited on the clearing account's row). A stripe
is one account row per provider and currency, read only by `clearing_balance(s)`.

The stripes are never folded: payouts burn to the main account (`payouts.services`), refunds and
chargebacks credit it (`webhooks.processing._reverse`), and a provider's clearing balance, what it
owes us or we owe it, is the main account plus its stripes (`clearing_balance`, `clearing_balances`).
"""

from __future__ import annotations

from collections import defaultdict

from ledger.errors import InvalidAccount
from ledger.models import Account
from ledger.selectors import balances_of_kind
from ledger.services import account_get_or_create

CLEARING_STRIPES = 64
PREFIX = "psp:"


def clearing_stripe(*, player_id: int) -> int:
    """Return the stripe a player's deposits debit."""
    return player_id % CLEARING_STRIPES


def clearing_stripe_account(*, provider: str, currency: str, stripe: int) -> Account:
    """Return stripe `stripe` of a provider's clearing account (`psp:<provider>:<stripe>`): deposits debit it."""
    if isinstance(stripe, bool) or not isinstance(stripe, int) or not 0 <= stripe < CLEARING_STRIPES:
        raise InvalidAccount(f"A clearing stripe is a whole number from 0 to {CLEARING_STRIPES - 1}, not {stripe!r}.")
    if not provider or ":" in provider:
        raise InvalidAccount(f"A provider's name has no colon: {provider!r}.")
    return account_get_or_create(
        name=f"{PREFIX}{provider}:{stripe}", currency=currency, kind=Account.Kind.EXTERNAL, allow_negative=True
    )


def deposit_clearing_account(*, provider: str, currency: str, player_id: int) -> Account:
    """Return the clearing stripe a player's deposit through `provider` debits."""
    return clearing_stripe_account(provider=provider, currency=currency, stripe=clearing_stripe(player_id=player_id))


def _provider_of(name: str) -> str | None:
    """Return the provider of `psp:<provider>` or `psp:<provider>:<stripe>`, else None."""
    if not name.startswith(PREFIX):
        return None
    provider, _, stripe = name.removeprefix(PREFIX).partition(":")
    if stripe and not stripe.isdigit():
        return None
    return provider


def clearing_balances() -> dict[tuple[str, str], int]:
    """Return every provider's clearing balance, main account plus stripes: {(provider, currency): balance_u}.

    One query over the EXTERNAL accounts (a handful of rows per provider, never its journals).
    """
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for _, name, currency, balance in balances_of_kind(kind=Account.Kind.EXTERNAL):
        provider = _provider_of(name)
        if provider is not None:
            totals[(provider, currency)] += int(balance)
    return dict(sorted(totals.items()))


def clearing_balance(*, provider: str, currency: str) -> int:
    """Return one provider's clearing balance in a currency: `psp:<provider>` plus its stripes."""
    names = [f"{PREFIX}{provider}", *(f"{PREFIX}{provider}:{i}" for i in range(CLEARING_STRIPES))]
    rows = Account.objects.filter(kind=Account.Kind.EXTERNAL, currency=currency, name__in=names)
    return int(sum(rows.values_list("balance_u", flat=True)))
