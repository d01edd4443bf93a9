"""The rounds' clock: one function that tests patch (`rounds.clock.now`) to move time.

Every time decision of the rounds (open, bet, lock, settle, forced results, operator prices) reads `now()`.
In development only (settings.ENVIRONMENT == "development", `make run`), `now()` adds the demo clock's offset:
a whole number of seconds in the file `RUN_DIR/demo_clock_offset`, written by `manage.py demo_clock`, so the
web server, the worker with beat and every `manage.py` command of the stack see the same shifted time and a
round can be locked and settled in a walk through the loop (README "The money loop, step by step"). Anywhere
else the file is never read: the rounds run on the real time. Everything outside the rounds (deposits,
withdrawals, webhooks, ledger, audit times) stays on the real time everywhere.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

DEVELOPMENT = "development"
OFFSET_FILE = "demo_clock_offset"

# (path, inode, mtime_ns, size) -> offset seconds: the file is parsed again only when it changes.
_cache: dict[str, tuple[tuple[str, int, int, int], int]] = {}


class DemoClockError(Exception):
    """The demo clock's file holds something that is not a whole number of seconds."""


def demo_clock_enabled() -> bool:
    """Whether the demo offset applies here: ENVIRONMENT=development, and nowhere else."""
    return str(getattr(settings, "ENVIRONMENT", "")) == DEVELOPMENT


def offset_path() -> Path:
    """Where the demo clock's offset lives: RUN_DIR (`make run`'s working files), shared by the stack."""
    return Path(settings.RUN_DIR) / OFFSET_FILE


def demo_offset_s() -> int:
    """The demo offset in seconds (0 without the file); one stat per call, the file read only when it changed.

    Only called in development (`now` checks first). A file that is not a whole number raises DemoClockError
    rather than letting the rounds run on a time nobody chose.
    """
    path = offset_path()
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return 0
    key = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
    cached = _cache.get("offset")
    if cached is not None and cached[0] == key:
        return cached[1]
    text = path.read_text().strip()
    try:
        value = int(text)
    except ValueError as exc:
        raise DemoClockError(f"{path} holds {text[:40]!r}, not a whole number of seconds.") from exc
    _cache["offset"] = (key, value)
    return value


def real_now() -> datetime:
    """The real current instant (aware, UTC), whatever the demo clock says."""
    return timezone.now()


def now() -> datetime:
    """Return the rounds' current instant (aware, UTC): the real one, shifted by the demo offset in development."""
    if not demo_clock_enabled():
        return timezone.now()
    offset = demo_offset_s()
    return timezone.now() + timedelta(seconds=offset) if offset else timezone.now()
