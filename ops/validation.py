"""Input checks shared by every app: JSON values free of NUL, strict integers, amounts of money.

An amount is a whole number of minor units (`amount_u`): never a string, a float or a boolean, never
zero, negative only where a ledger leg allows it, and at most `MAX_AMOUNT_U`. `amount_u_problem` says
what is wrong in one sentence; services raise it under their own error class (`amount_u_check`), API
serializers refuse it as a field error (`AmountField`), so the same bad input reads the same everywhere.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, cast

from rest_framework import serializers

from .errors import ApplicationError

# The largest amount one leg may carry: 2**53 - 1, the largest integer every JSON reader (RFC 8785, JavaScript)
# keeps exact, so an amount the ledger accepts can always be hashed, shown and sent back unchanged; far below
# 2**63, so no sum of a few legs can overflow a bigint.
MAX_AMOUNT_U = 2**53 - 1


def contains_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character in any string or key (PostgreSQL refuses them)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


def refuse_nul(value: Any) -> Any:
    """Serializer validator: refuse a JSON value that holds a NUL character anywhere."""
    if contains_nul(value):
        raise serializers.ValidationError("Null characters are not allowed.")
    return value


def amount_u_problem(
    value: object,
    *,
    field: str = "amount_u",
    allow_zero: bool = False,
    allow_negative: bool = False,
    max_u: int = MAX_AMOUNT_U,
) -> str | None:
    """Return why `value` is not an acceptable amount of minor units, in one sentence, or None if it is."""
    if isinstance(value, bool) or not isinstance(value, int):  # True, 5.0 and "5" are not amounts
        return f"{field} must be a whole number of minor units, not {type(value).__name__}."
    if value == 0 and not allow_zero:
        if allow_negative:
            return f"{field} must not be zero: an amount of zero moves nothing."
        return f"{field} must be positive, not 0."
    if value < 0 and not allow_negative:
        return f"{field} must be positive, not {value}."
    if abs(value) > max_u:
        return f"{field} {value} is out of range."
    return None


def amount_u_check(
    value: object,
    *,
    error: type[ApplicationError],
    field: str = "amount_u",
    allow_zero: bool = False,
    allow_negative: bool = False,
    max_u: int = MAX_AMOUNT_U,
) -> int:
    """Return `value` as an amount of minor units, or raise `error` (the caller's own class) saying why not."""
    problem = amount_u_problem(value, field=field, allow_zero=allow_zero, allow_negative=allow_negative, max_u=max_u)
    if problem is not None:
        raise error(problem)
    return cast("int", value)  # amount_u_problem found nothing wrong: it is an int


def amount_u_argument(text: str) -> int:
    """Read an amount of minor units typed on a command line (`type=` of an argparse option).

    Digits with an optional minus sign only: `1_000`, `1e6` and `5.0` are refused. Whether the amount may
    be zero or negative is the service's (or the command's) check, with `amount_u_problem`'s words.
    """
    if not re.fullmatch(r"-?[0-9]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minor units.")
    return int(text)


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer: no strings, floats or booleans."""

    default_error_messages = {"strict": "Must be a JSON integer, not {kind}."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("strict", kind=type(data).__name__)
        return super().to_internal_value(data)


class AmountField(StrictIntegerField):
    """An amount of money in minor units, from a JSON integer: positive and at most `max_u` (the schema says so)."""

    def __init__(self, *, max_u: int = MAX_AMOUNT_U, **kwargs: Any) -> None:
        self.max_u = max_u
        super().__init__(min_value=1, max_value=max_u, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        problem = amount_u_problem(data, field=self.field_name or "amount_u", max_u=self.max_u)
        if problem is not None:
            raise serializers.ValidationError(problem, code="invalid")
        return super().to_internal_value(data)
