"""One way to show money in the admin: `money_column("amount_u")` for list_display and readonly_fields.

Every amount column in every admin goes through here (and so through `ledger.money.format_money`):
major units with the currency, exactly, right-aligned figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from .money import format_money_safe


def _resolve(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def money_column(field: str, *, currency: str = "currency", description: str | None = None) -> Callable[[Any], str]:
    """Return an admin display callable writing `obj.<field>` (minor units) in `obj.<currency>`.

    `currency` is an attribute path (`"round.currency"` for a bet); select the related row in the admin's
    queryset (`list_select_related`) so a list page stays one query.
    """

    def column(obj: Any) -> str:
        return format_html(
            '<span class="money">{}</span>', format_money_safe(getattr(obj, field), _resolve(obj, currency))
        )

    column.__name__ = f"{field}_money"
    label = description or field.removesuffix("_u").replace("_", " ")
    return admin.display(description=label, ordering=field)(column)
