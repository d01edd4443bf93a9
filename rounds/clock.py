"""The rounds' clock: one function that tests patch (`rounds.clock.now`) to move time."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """Return the current instant (aware, UTC)."""
    return timezone.now()
