"""Money for people: minor units written in major units with their currency, and read back exactly.

Amounts live as integers in minor units (`ledger.currencies`); this module is the one place that turns
them into text for operators (`5.000000 USDC`, `$100.00`) and parses what an operator types
(`"100.5"` USD -> `10050`). `Decimal` only, never floats; input with more decimals than the currency
has is refused, not rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .currencies import Currency, get_currency
from .errors import UnknownCurrency

SYMBOLS = {"USD": "$", "EUR": "€"}  # fiat written with a symbol; tokens with their code
MAX_MINOR_U = 2**63 - 1  # BigIntegerField
_MAJOR = re.compile(r"^(?P<sign>-?)(?P<whole>\d+)(?:\.(?P<frac>\d+))?$")


def format_money(amount_u: int | None, currency: str | Currency) -> str:
    """Write minor units in major units with the currency: `$1,234.50`, `-€0.05`, `5.000000 USDC`."""
    if amount_u is None:
        return "—"
    if isinstance(amount_u, bool) or not isinstance(amount_u, int):
        raise TypeError(f"amount_u must be an int of minor units, not {type(amount_u).__name__}")
    cur = currency if isinstance(currency, Currency) else get_currency(currency)
    digits = f"{Decimal(abs(amount_u)).scaleb(-cur.exponent):,.{cur.exponent}f}"
    sign = "-" if amount_u < 0 else ""
    symbol = SYMBOLS.get(cur.code)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {cur.code}"


def format_money_safe(amount_u: int | None, currency: str) -> str:
    """Like `format_money`, but an unknown currency shows the raw minor units and the code."""
    try:
        return format_money(amount_u, currency)
    except UnknownCurrency:
        return f"{amount_u} (minor units of {currency!r})"


def parse_major(text: str, currency: str | Currency, *, allow_negative: bool = False) -> int:
    """Read an amount typed in major units (`"100.5"`, `"100.50 USD"`) and return exact minor units.

    Raise ValueError for anything that is not a plain decimal number, for more decimals than the
    currency has, for a negative amount unless allowed, and for an amount beyond a 64-bit integer.
    """
    cur = currency if isinstance(currency, Currency) else get_currency(currency)
    value = str(text).strip().replace(",", "").replace("_", "")
    for prefix in (SYMBOLS.get(cur.code, ""),):
        if prefix and value.lstrip("-").startswith(prefix):
            value = value.replace(prefix, "", 1)
    if value.upper().endswith(cur.code):
        value = value[: -len(cur.code)].rstrip()
    match = _MAJOR.match(value)
    if not match:
        raise ValueError(f"{text!r} is not an amount in {cur.code}: write digits with an optional decimal point.")
    frac = match["frac"] or ""
    if len(frac) > cur.exponent:
        raise ValueError(
            f"{cur.code} has {cur.exponent} decimal places; {text!r} has {len(frac)}. Nothing is rounded: "
            f"write at most {cur.exponent}."
        )
    amount_u = int(match["whole"]) * 10**cur.exponent + (int(frac.ljust(cur.exponent, "0")) if cur.exponent else 0)
    if match["sign"]:
        if not allow_negative:
            raise ValueError(f"{text!r} is negative; enter a positive amount.")
        amount_u = -amount_u
    if abs(amount_u) > MAX_MINOR_U:
        raise ValueError(f"{text!r} is too large.")
    return amount_u


class MoneyField(forms.CharField):
    """A form field that takes major units and cleans to exact minor units (an int) of one currency."""

    def __init__(self, *, currency: str, allow_negative: bool = False, allow_zero: bool = False, **kwargs: Any) -> None:
        self.currency = get_currency(currency)
        self.allow_negative = allow_negative
        self.allow_zero = allow_zero
        kwargs.setdefault("help_text", f"In {self.currency.code}, at most {self.currency.exponent} decimals.")
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("inputmode", "decimal")
        self.widget.attrs.setdefault("autocomplete", "off")

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return None
        try:
            amount_u = parse_major(text, self.currency, allow_negative=self.allow_negative)
        except ValueError as exc:
            raise ValidationError(str(exc), code="invalid_amount") from exc
        if amount_u == 0 and not self.allow_zero:
            raise ValidationError("Enter an amount other than zero.", code="zero_amount")
        return amount_u

    def prepare_value(self, value: Any) -> Any:
        """Show an int of minor units in major units when a form is redisplayed."""
        if isinstance(value, int) and not isinstance(value, bool):
            return format(Decimal(value).scaleb(-self.currency.exponent), f".{self.currency.exponent}f")
        return value
