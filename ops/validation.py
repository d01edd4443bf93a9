"""Input checks shared by the API serializers."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


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
