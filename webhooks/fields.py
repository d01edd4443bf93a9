"""Field checks shared by the deposit paths: an amount in minor units, a known currency, an active player."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model

from ledger.currencies import get_currency
from ledger.errors import LedgerError
from ops.validation import amount_u_check

from .errors import InvalidAmount, InvalidPayload, UnknownCurrency, UnknownUser


def checked_amount_u(value: Any, *, allow_zero: bool = False) -> int:
    """Return a positive (or, with `allow_zero`, zero) whole number of minor units within the ledger's range."""
    return amount_u_check(value, error=InvalidAmount, allow_zero=allow_zero)


def checked_currency(value: Any) -> str:
    """Return the code of a known currency."""
    if not isinstance(value, str):
        raise UnknownCurrency(f"Unknown currency {value!r}.")
    try:
        return get_currency(value).code
    except LedgerError:
        raise UnknownCurrency(f"Unknown currency {value!r}.") from None


def checked_player(value: Any) -> Any:
    """Return the active player whose public id is `value`."""
    try:
        public_id = uuid.UUID(str(value)) if isinstance(value, str | uuid.UUID) else None
    except ValueError:
        public_id = None
    if public_id is None:
        raise InvalidPayload(f"user_id must be a player's UUID, not {value!r}.")
    user = get_user_model().objects.filter(public_id=public_id, is_active=True).first()
    if user is None:
        raise UnknownUser(f"No active player with id {public_id}; nothing was stored or credited.")
    return user
