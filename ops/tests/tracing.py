"""Trace test tools: the OpenTelemetry SDK's in-memory exporter and a handler that keeps log records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from ops.tracing import TraceIdLogFilter, flow_reset, tracing_init, tracing_shutdown


class TracedRecord(logging.LogRecord):
    """A log record as `TraceIdLogFilter` leaves it (a type only: the record is a plain LogRecord)."""

    trace_id: str
    flow_id: str


class Records(logging.Handler):
    """Keep every record, with the trace and flow ids the JSON logs would carry."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(TraceIdLogFilter())
        self.records: list[TracedRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(cast(TracedRecord, record))  # the handler's filter ran before emit


@contextmanager
def in_memory_spans() -> Iterator[Any]:
    """Instrument with an in-memory exporter for the length of a test; yield the exporter."""
    from django.db import connections
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    flow_reset()  # this thread may still hold the flow of an earlier test's record
    connections.close_all()  # psycopg spans come from connections opened once instrumented
    assert tracing_init(exporter=exporter) is not None
    try:
        yield exporter
    finally:
        tracing_shutdown()
