"""`{% load money %}{{ amount_u|money:currency }}`: minor units written for people (`ledger.money`)."""

from __future__ import annotations

from django import template

from ledger.money import format_money_safe

register = template.Library()


@register.filter(name="money")
def money(amount_u: int | None, currency: str) -> str:
    """Write an amount in minor units in major units with its currency, exactly."""
    return format_money_safe(amount_u, currency)
