"""A lock so the same management command cannot run twice at once (PostgreSQL advisory lock)."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator

from django.core.management.base import CommandError
from django.db import connection


@contextlib.contextmanager
def command_lock(name: str) -> Iterator[None]:
    """Hold a session-level advisory lock named after the command; refuse if another holds it."""
    key = zlib.crc32(f"command:{name}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        (acquired,) = cursor.fetchone()
    if not acquired:
        raise CommandError(f"{name} is already running elsewhere; wait for it to finish.")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
