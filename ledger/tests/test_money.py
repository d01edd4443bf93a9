"""Money written for people and read back from them, per currency, exactly; refusals included."""

from __future__ import annotations

import pytest

from ledger.currencies import CURRENCIES
from ledger.errors import UnknownCurrency
from ledger.money import MoneyField, format_money, format_money_safe, parse_major


@pytest.mark.parametrize(
    ("amount_u", "currency", "text"),
    [
        (10000, "USD", "$100.00"),
        (1, "USD", "$0.01"),
        (0, "USD", "$0.00"),
        (-150, "USD", "-$1.50"),
        (123456789, "USD", "$1,234,567.89"),
        (5, "EUR", "€0.05"),
        (250_00, "EUR", "€250.00"),
        (5_000_000, "USDC", "5.000000 USDC"),
        (250_000_000, "USDC", "250.000000 USDC"),
        (1, "USDC", "0.000001 USDC"),
        (-1_000_001, "USDC", "-1.000001 USDC"),
        (2**63 - 1, "USDC", "9,223,372,036,854.775807 USDC"),  # beyond a float's 53 bits: still exact
    ],
)
def test_format_money_is_exact_in_major_units_with_the_currency(amount_u: int, currency: str, text: str) -> None:
    assert format_money(amount_u, currency) == text


def test_format_money_refuses_floats_and_unknown_currencies() -> None:
    with pytest.raises(TypeError):
        format_money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(UnknownCurrency):
        format_money(1, "XXX")
    assert format_money_safe(7, "XXX") == "7 (minor units of 'XXX')"
    assert format_money(None, "USD") == "—"


@pytest.mark.parametrize(
    ("text", "currency", "amount_u"),
    [
        ("100", "USD", 10000),
        ("100.5", "USD", 10050),
        ("100.50", "USD", 10050),
        ("$1,234.56", "USD", 123456),
        ("0.01", "USD", 1),
        (" 2.5 EUR ", "EUR", 250),
        ("€0.05", "EUR", 5),
        ("5", "USDC", 5_000_000),
        ("0.000001", "USDC", 1),
        ("250.000000 USDC", "USDC", 250_000_000),
        ("9223372036854.775807", "USDC", 2**63 - 1),
        ("0.1", "USDC", 100_000),  # 0.1 is not a float here: exactly 100000 micro USDC
    ],
)
def test_parse_major_converts_exactly(text: str, currency: str, amount_u: int) -> None:
    assert parse_major(text, currency) == amount_u


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("100.505", "USD", "USD has 2 decimal places"),
        ("0.001", "EUR", "EUR has 2 decimal places"),
        ("0.0000001", "USDC", "USDC has 6 decimal places"),
        ("1e3", "USD", "not an amount"),
        ("abc", "USDC", "not an amount"),
        ("1.2.3", "USD", "not an amount"),
        ("", "USD", "not an amount"),
        ("NaN", "USD", "not an amount"),
        ("1 USD", "EUR", "not an amount"),  # another currency's code
        ("-5", "USD", "negative"),
        ("9223372036854.775808", "USDC", "too large"),
    ],
)
def test_parse_major_refuses(text: str, currency: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_major(text, currency)


def test_parse_major_takes_a_negative_only_when_allowed() -> None:
    assert parse_major("-1.50", "USD", allow_negative=True) == -150


@pytest.mark.parametrize("code", sorted(CURRENCIES))
def test_every_registered_currency_round_trips(code: str) -> None:
    for amount_u in (0, 1, 10 ** CURRENCIES[code].exponent, 123456789):
        assert parse_major(format_money(amount_u, code), code) == amount_u


def test_money_field_cleans_to_minor_units_and_refuses_too_many_decimals() -> None:
    field = MoneyField(currency="USD")
    assert field.clean("12.34") == 1234
    assert field.widget.attrs["inputmode"] == "decimal"
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="USD has 2 decimal places"):
        field.clean("12.345")
    with pytest.raises(ValidationError, match="other than zero"):
        field.clean("0")
    with pytest.raises(ValidationError, match="required"):
        field.clean("")
    usdc = MoneyField(currency="USDC", required=False)
    assert usdc.clean("") is None
    assert usdc.clean("1.000001") == 1_000_001
    assert usdc.prepare_value(1_000_001) == "1.000001"
    with pytest.raises(ValidationError, match="USDC has 6 decimal places"):
        usdc.clean("1.0000001")
