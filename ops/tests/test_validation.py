"""The kernel's input checks: one sentence for one bad amount, wherever it arrives."""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

import pytest
from rest_framework import serializers

from ops.errors import ApplicationError
from ops.validation import (
    MAX_AMOUNT_U,
    AmountField,
    StrictIntegerField,
    amount_u_argument,
    amount_u_check,
    amount_u_problem,
)


class Refused(ApplicationError):
    code = "test/refused"


@pytest.mark.parametrize(
    ("value", "options", "problem"),
    [
        (5, {}, None),
        (MAX_AMOUNT_U, {}, None),
        (-5, {"allow_negative": True}, None),
        (0, {"allow_zero": True}, None),
        ("5", {}, "amount_u must be a whole number of minor units, not str."),
        (5.0, {}, "amount_u must be a whole number of minor units, not float."),
        (True, {}, "amount_u must be a whole number of minor units, not bool."),
        (None, {}, "amount_u must be a whole number of minor units, not NoneType."),
        (0, {}, "amount_u must be positive, not 0."),
        (-5, {}, "amount_u must be positive, not -5."),
        (0, {"allow_negative": True}, "amount_u must not be zero: an amount of zero moves nothing."),
        (MAX_AMOUNT_U + 1, {}, f"amount_u {MAX_AMOUNT_U + 1} is out of range."),
        (-MAX_AMOUNT_U - 1, {"allow_negative": True}, f"amount_u {-MAX_AMOUNT_U - 1} is out of range."),
        (11, {"max_u": 10, "field": "stake_u"}, "stake_u 11 is out of range."),
    ],
)
def test_amount_problems_read_the_same_everywhere(value: Any, options: dict[str, Any], problem: str | None) -> None:
    assert amount_u_problem(value, **options) == problem
    if problem is None:
        assert amount_u_check(value, error=Refused, **options) == value
    else:
        with pytest.raises(Refused) as refused:
            amount_u_check(value, error=Refused, **options)
        assert refused.value.detail == problem and refused.value.code == "test/refused"


class _Input(serializers.Serializer):
    amount_u = AmountField()
    stake_u = AmountField(max_u=100, required=False)
    count = StrictIntegerField(required=False)


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"amount_u": 5}, {}),
        ({"amount_u": "5"}, {"amount_u": ["amount_u must be a whole number of minor units, not str."]}),
        ({"amount_u": True}, {"amount_u": ["amount_u must be a whole number of minor units, not bool."]}),
        ({"amount_u": 5.0}, {"amount_u": ["amount_u must be a whole number of minor units, not float."]}),
        ({"amount_u": 0}, {"amount_u": ["amount_u must be positive, not 0."]}),
        ({"amount_u": None}, {"amount_u": ["This field may not be null."]}),
        ({"amount_u": 1, "stake_u": 101}, {"stake_u": ["stake_u 101 is out of range."]}),
        ({"amount_u": 1, "count": "3"}, {"count": ["Must be a JSON integer, not str."]}),
        ({"amount_u": 1, "count": False}, {"count": ["Must be a JSON integer, not bool."]}),
    ],
)
def test_the_serializer_fields_refuse_with_the_same_sentence(data: dict[str, Any], errors: dict[str, Any]) -> None:
    form = _Input(data=data)
    assert form.is_valid() is (not errors)
    assert {field: [str(e) for e in messages] for field, messages in form.errors.items()} == errors


def test_the_amount_field_states_its_bounds_in_the_schema() -> None:
    field = AmountField(max_u=100)
    assert (field.min_value, field.max_value) == (1, 100)


@pytest.mark.parametrize("text", ["5", "-5", "0", "100000000000000000"])
def test_a_command_line_amount_is_digits(text: str) -> None:
    assert amount_u_argument(text) == int(text)


@pytest.mark.parametrize("text", ["", "5.0", "1e6", "1_000", " 5", "five", "+5"])
def test_a_command_line_amount_refuses_anything_else(text: str) -> None:
    with pytest.raises(ArgumentTypeError, match="is not a whole number of minor units"):
        amount_u_argument(text)
