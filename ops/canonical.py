"""Canonical JSON (RFC 8785) and its SHA-256: the one way this project hashes a JSON value.

The rounds' public verification protocol hashes canonical JSON without floats (a float has no single
decimal spelling a player's own code would agree on); webhook payloads and API request bodies may carry
floats from the sender, and RFC 8785 gives them one spelling too, so those callers pass ``floats=True``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TypeAlias

import rfc8785

__all__ = ["CanonicalJsonError", "canonical_json", "canonical_sha256"]

Json: TypeAlias = "None | bool | int | float | str | list[Json] | dict[str, Json]"


class CanonicalJsonError(ValueError):
    """The value has no canonical JSON form (a float where none is allowed, a non-string key, an odd type)."""


def _plain(obj: object, *, floats: bool) -> Json:
    """Convert ``obj`` to plain JSON types (str and int subclasses to their base), refusing what JSON cannot say."""
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float) and floats:
        return float(obj)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, Mapping):
        if not all(isinstance(key, str) for key in obj):
            raise CanonicalJsonError("object keys must be strings")
        return {str.__str__(key): _plain(value, floats=floats) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(item, floats=floats) for item in obj]
    raise CanonicalJsonError(f"unsupported JSON value of type {type(obj).__name__}")


def canonical_json(obj: object, *, floats: bool = False) -> bytes:
    """Return the RFC 8785 canonical JSON bytes of ``obj``; floats are refused unless ``floats=True``."""
    try:
        return rfc8785.dumps(_plain(obj, floats=floats))
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        raise CanonicalJsonError(str(exc)) from exc


def canonical_sha256(obj: object, *, floats: bool = False, prefix: bytes = b"") -> str:
    """Return the SHA-256 hex digest of ``prefix`` followed by the canonical JSON of ``obj``."""
    return hashlib.sha256(prefix + canonical_json(obj, floats=floats)).hexdigest()
