"""Reads for rounds and bets."""

from __future__ import annotations

from typing import Any


def user_open_stakes(*, user: Any) -> dict[str, int]:
    """Return the player's stakes in rounds not yet settled, per currency."""
    return {}
