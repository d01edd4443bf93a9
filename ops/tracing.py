"""Traces (OpenTelemetry), the trace id in the JSON logs, and error reports (Sentry).

`tracing_init()` runs in every process (web, worker, beat, commands) from the ops app's `ready()`. Spans
are recorded and exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (over OTLP/HTTP; the standard
`OTEL_*` variables configure the exporter); otherwise nothing is instrumented and nothing leaves the
process. The instrumentations are the maintained ones: Django (server spans), Celery (publish and run spans,
with the trace context carried in the task's headers, so a task continues the trace of the request that
queued it), psycopg (one span per query) and requests (the PSP SDKs' HTTP calls, with the trace context
sent along). Tests pass their own exporter (the SDK's in-memory one).

One flow, one id: a `flow_id` is born with each money flow and stored on its record (`flow_id_new`:
`wd-<hex>` on a withdrawal, `dep-<hex>` on a deposit, `bet-<hex>` on a bet, `stl-<hex>` on a round when its
settlement starts, `Round.settlement_flow_id`). Records older than the field keep the id their flow had
before it was stored (`withdrawal:<id>`, `deposit:<provider>:<reference>`, `bet:<bet_id>`), so traces
exported earlier still match. Saving such a record binds its flow to the current request or job
(`flow_bind`); so does every task that reloads the record by id and every webhook that finds it. A bound
flow goes on the current span, into OpenTelemetry baggage (which the Celery and requests instrumentations
carry into every task queued and every PSP call made afterwards), onto every span started later
(`FlowIdSpanProcessor`) and into the JSON logs (`flow_id`). The PSP calls also send it in the PSP's own
object (Stripe `metadata["flow_id"]`, Adyen Checkout `metadata.flow_id`, Adyen transfer `description`), so
the PSP's dashboard leads back to the flow. `flow_span` wraps a unit of work of its own (a round's
settlement) in a span of that flow.

`sentry_init()` reports errors to Sentry when `SENTRY_DSN` is set (no personal data, no performance traces).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from opentelemetry.sdk.trace import SpanProcessor

logger = logging.getLogger(__name__)

_instrumentors: list[Any] = []
_provider: list[Any] = []  # the tracer provider of tracing_init, while instrumented
_flow_id: ContextVar[str] = ContextVar("flow_id", default="-")
FLOW_KEY = "flow_id"


def current_flow_id() -> str:
    """The flow bound to this request or job ('-' when none)."""
    if _instrumentors:
        from opentelemetry import baggage

        value = baggage.get_baggage(FLOW_KEY)
        if value:
            return str(value)
    return _flow_id.get()


def flow_bind(flow_id: str) -> None:
    """Bind a money flow to the current request or job (logs, current span, baggage for what follows)."""
    _flow_id.set(flow_id)
    if not _instrumentors:
        return
    from opentelemetry import baggage, context, trace

    if baggage.get_baggage(FLOW_KEY) != flow_id:
        # Not detached here: the Django and Celery instrumentations restore the context at the end of the
        # request or task, which drops this with it.
        context.attach(baggage.set_baggage(FLOW_KEY, flow_id))
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(FLOW_KEY, flow_id)


def flow_reset(**_kwargs: Any) -> None:
    """Forget the flow at the start of a request or a job."""
    _flow_id.set("-")


def flow_id_new(kind: str) -> str:
    """A new flow id for a money flow of this kind (`wd`, `dep`, `bet`, `stl`): `<kind>-<32 hex>`.

    Letters, digits and a hyphen only: a bank transfer's description (where Adyen keeps it) allows no more.
    """
    return f"{kind}-{uuid.uuid4().hex}"


def flow_id_of(instance: Any) -> str | None:
    """The flow id stored on a money record (a webhook event: its deposit's, when already loaded), or None."""
    label = instance._meta.label
    if label in ("payouts.Withdrawal", "webhooks.Deposit", "rounds.Bet"):
        return instance.flow_id or None
    if label == "webhooks.WebhookEvent":
        if instance.deposit_id and instance._meta.get_field("deposit").is_cached(instance):  # no extra query
            return flow_id_of(instance.deposit)
        return None
    return None


@contextmanager
def flow_span(name: str, *, flow_id: str, attributes: dict[str, Any] | None = None) -> Iterator[None]:
    """Run a block as one span of this flow (a round's settlement); the flow is unbound again after it."""
    token = _flow_id.set(flow_id)
    context_token = None
    try:
        if not _instrumentors:
            yield
            return
        from opentelemetry import baggage, context

        context_token = context.attach(baggage.set_baggage(FLOW_KEY, flow_id))
        tracer = _provider[0].get_tracer(__name__)
        with tracer.start_as_current_span(name, attributes={**(attributes or {}), FLOW_KEY: flow_id}):
            yield
    finally:
        if context_token is not None:
            from opentelemetry import context

            context.detach(context_token)
        _flow_id.reset(token)


def _bind_saved_record(sender: Any, instance: Any, **_kwargs: Any) -> None:
    flow_id = flow_id_of(instance)
    if flow_id:
        flow_bind(flow_id)


def connect_flow_signals() -> None:
    """Bind flows when their records are saved; forget them between requests and jobs."""
    from celery.signals import task_prerun
    from django.core.signals import request_started
    from django.db.models.signals import post_save

    for model in ("payouts.Withdrawal", "webhooks.Deposit", "webhooks.WebhookEvent", "rounds.Bet"):
        post_save.connect(_bind_saved_record, sender=model, dispatch_uid=f"flow_id:{model}")
    request_started.connect(flow_reset, dispatch_uid="flow_id:request")
    task_prerun.connect(flow_reset, dispatch_uid="flow_id:task", weak=False)


class FlowIdSpanProcessor(SpanProcessor):
    """Put the flow id carried in baggage (or bound in this thread) on every span as it starts."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        from opentelemetry import baggage

        flow_id = baggage.get_baggage(FLOW_KEY, parent_context) or (_flow_id.get() if _flow_id.get() != "-" else None)
        if flow_id:
            span.set_attribute(FLOW_KEY, str(flow_id))


def tracing_init(*, exporter: Any = None) -> Any:
    """Instrument this process when an OTLP endpoint is configured (or an exporter is given); return the provider."""
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
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

    resource = Resource.create(
        {"service.name": settings.OTEL_SERVICE_NAME, "deployment.environment": settings.ENVIRONMENT}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(FlowIdSpanProcessor())
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _provider.append(provider)
    for instrumentor, options in (
        (DjangoInstrumentor(), {}),
        (CeleryInstrumentor(), {}),
        (PsycopgInstrumentor(), {"enable_commenter": False}),
        (RequestsInstrumentor(), {}),
    ):
        instrumentor.instrument(tracer_provider=provider, **options)
        _instrumentors.append(instrumentor)
    logger.info("tracing on: %s", "OTLP " + endpoint if endpoint and exporter is None else "given exporter")
    return provider


def tracing_shutdown() -> None:
    """Remove the instrumentations (tests)."""
    while _instrumentors:
        _instrumentors.pop().uninstrument()
    _provider.clear()


def current_trace_id() -> str:
    """The current span's trace id as 32 hex digits, or '-' outside a trace."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else "-"


class TraceIdLogFilter(logging.Filter):
    """Add `trace_id` and `flow_id` to every log record (the JSON logs' link to the trace and the flow)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id()
        record.flow_id = current_flow_id()
        return True


def sentry_init() -> bool:
    """Report errors to Sentry when SENTRY_DSN is set; return whether it is on."""
    dsn = settings.SENTRY_DSN
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=settings.ENVIRONMENT,  # no personal data by default
        traces_sample_rate=0.0,
    )
    return True


def tracing_on() -> bool:
    """Whether this process is instrumented: each query on a psycopg cursor of the connection becomes a span."""
    return bool(_instrumentors)
