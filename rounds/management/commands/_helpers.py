"""Shared by the rounds commands: turn a service refusal into one readable CommandError line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.core.management.base import CommandError

from ops.errors import ApplicationError


@contextlib.contextmanager
def refusals_as_command_errors() -> Iterator[None]:
    """Re-raise an ApplicationError as a one-line CommandError (exit status 1)."""
    try:
        yield
    except ApplicationError as exc:
        raise CommandError(f"{exc.code}: {exc.detail}") from exc
