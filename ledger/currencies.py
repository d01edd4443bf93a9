"""The currency registry: each code with its exponent (minor units per major unit = 10**exponent)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Currency:
    code: str
    exponent: int
    unit_name: str

    def to_major(self, amount_u: int) -> Decimal:
        """Return the amount in whole units, for people to read."""
        return Decimal(amount_u).scaleb(-self.exponent)

    def format(self, amount_u: int) -> str:
        """Format an amount for people, e.g. `1.50 USD`."""
        return f"{self.to_major(amount_u):,.{self.exponent}f} {self.code}"


CURRENCIES: dict[str, Currency] = {
    "USD": Currency("USD", 2, "cents"),
    "EUR": Currency("EUR", 2, "cents"),
    "USDC": Currency("USDC", 6, "micro USDC"),
}


def get_currency(code: str) -> Currency:
    """Return the registered currency, or raise UnknownCurrency."""
    from .errors import UnknownCurrency

    try:
        return CURRENCIES[code]
    except (KeyError, TypeError):
        raise UnknownCurrency(f"Unknown currency {code!r}; known: {', '.join(CURRENCIES)}.") from None
