"""Correlation ids for structured logs: one per request and one per job."""

from __future__ import annotations

import contextvars
import logging
import uuid

_correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")


def new_correlation_id() -> str:
    """Return a fresh correlation id."""
    return uuid.uuid4().hex


def set_correlation_id(value: str) -> None:
    """Bind a correlation id to the current request or job."""
    _correlation_id.set(value)


def get_correlation_id() -> str:
    """Return the correlation id bound to the current context."""
    return _correlation_id.get()


class CorrelationIdFilter(logging.Filter):
    """Add `correlation_id` to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = get_correlation_id()
        return True
