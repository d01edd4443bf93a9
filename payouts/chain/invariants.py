"""Invariant owned by the chain app: every credited on-chain deposit has its own matching credit."""

from __future__ import annotations

from collections.abc import Iterable

from ledger.reconciliation import Breach, register_invariant


@register_invariant("chain_deposit_credited_once")
def check_chain_deposits() -> Iterable[Breach]:
    """A credited chain deposit's journal is a `deposit` crediting its amount to its player's available."""
    from ledger.models import Account, Entry

    from .models import ChainDeposit

    for deposit in ChainDeposit.objects.filter(status=ChainDeposit.Status.CREDITED).select_related("journal"):
        journal = deposit.journal
        ok = (
            journal is not None
            and journal.type == "deposit"
            and Entry.objects.filter(
                journal=journal,
                amount_u=deposit.amount_u,
                currency=deposit.currency,
                account__owner_id=deposit.user_id,
                account__kind=Account.Kind.USER_AVAILABLE,
            ).exists()
        )
        if not ok:
            yield Breach(
                "chain_deposit_credited_once",
                deposit.currency,
                f"chain deposit {deposit.tx_hash}:{deposit.log_index} has no matching credit",
            )
