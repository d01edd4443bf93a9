"""Traces (OpenTelemetry), the trace id in the JSON logs, and error reports (Sentry).

`tracing_init()` runs in every process (web, worker, beat, commands) from the ops app's `ready()`. Spans
are recorded and exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (over OTLP/HTTP; the standard
`OTEL_*` variables configure the exporter); otherwise nothing is instrumented and nothing leaves the
process. The instrumentations are the maintained ones: Django (server spans), Celery (publish and run spans,
with the trace context carried in the task's headers, so a task continues the trace of the request that
queued it), psycopg (one span per query) and requests (the PSP SDKs' HTTP calls, with the trace context
sent along). Tests pass their own exporter (the SDK's in-memory one).

`sentry_init()` reports errors to Sentry when `SENTRY_DSN` is set (no personal data, no performance traces).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_instrumentors: list[Any] = []


def tracing_init(*, exporter: Any = None) -> Any:
    """Instrument this process when an OTLP endpoint is configured (or an exporter is given); return the provider."""
    endpoint = getattr(settings, "OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if _instrumentors or (exporter is None and not endpoint):
        return None
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": getattr(settings, "OTEL_SERVICE_NAME", "backoffice"),
                                "deployment.environment": getattr(settings, "ENVIRONMENT", "")})
    provider = TracerProvider(resource=resource)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for instrumentor, options in ((DjangoInstrumentor(), {}), (CeleryInstrumentor(), {}),
                                  (PsycopgInstrumentor(), {"enable_commenter": False}),
                                  (RequestsInstrumentor(), {})):
        instrumentor.instrument(tracer_provider=provider, **options)
        _instrumentors.append(instrumentor)
    logger.info("tracing on: %s", "OTLP " + endpoint if endpoint and exporter is None else "given exporter")
    return provider


def tracing_shutdown() -> None:
    """Remove the instrumentations (tests)."""
    while _instrumentors:
        _instrumentors.pop().uninstrument()


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits, or '-' outside a trace."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else "-"


class TraceIdLogFilter(logging.Filter):
    """Add `trace_id` to every log record (the JSON logs' link to the trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id()
        return True


def sentry_init() -> bool:
    """Report errors to Sentry when SENTRY_DSN is set; return whether it is on."""
    dsn = getattr(settings, "SENTRY_DSN", "")
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, environment=getattr(settings, "ENVIRONMENT", ""), send_default_pii=False,
                    traces_sample_rate=0.0)
    return True
