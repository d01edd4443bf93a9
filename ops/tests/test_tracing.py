"""Traces with the OpenTelemetry SDK's in-memory exporter: a deposit from its webhook to its credit is one
trace across the web request, the Celery publish, the worker's run and their database queries, and the log
lines of that flow carry its trace id; every span of the flow carries the `flow_id` stored on the deposit."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from ops.tests.tracing import Records, in_memory_spans
from ops.tracing import tracing_init
from webhooks.models import Deposit
from webhooks.tests.helpers import CUSTODY_URL, available, custody_delivery, custody_payload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def spans() -> Iterator[Any]:
    with in_memory_spans() as exporter:
        yield exporter


def _ledger_write(span: Any) -> bool:
    """A database span that writes ledger entries: a call of a posting function, or the bulk INSERT."""
    statement = str(span.attributes.get("db.statement", span.attributes.get("db.query.text", "")))
    return "ledger_entry" in statement or "ledger_post(" in statement


def test_a_deposit_is_one_trace_from_webhook_to_credit(
    spans: Any, celery_worker_on_redis: Any, player: Any, settings: Any
) -> None:
    from opentelemetry.trace import SpanKind

    settings.WEBHOOK_CREDIT_IN_REQUEST = False  # through the queue (a deposit credited in its request: below)
    records = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(records)
    root.setLevel(logging.INFO)
    try:
        delivery = custody_delivery(custody_payload(player, amount_u=6_000_000, reference="tx-traced"))
        response = Client().post(
            CUSTODY_URL, data=delivery.body, content_type="application/json", headers=delivery.headers
        )
        assert response.status_code == 202, response.content
        deadline = time.monotonic() + 30
        while available(player, "USDC") != 6_000_000:
            assert time.monotonic() < deadline, "the deposit was not credited"
            time.sleep(0.1)
        time.sleep(0.5)  # the worker's run span ends just after the commit
    finally:
        root.removeHandler(records)
        root.setLevel(level)

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST webhooks/deposits"]
    assert len(server) == 1, [(s.name, s.kind) for s in finished if s.kind == SpanKind.SERVER]
    trace_id = server[0].context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    publish = [s for s in in_trace if s.kind == SpanKind.PRODUCER and "process_webhook_event" in s.name]
    run = [s for s in in_trace if s.kind == SpanKind.CONSUMER and "process_webhook_event" in s.name]
    queries = [
        s
        for s in in_trace
        if s.attributes.get("db.system") == "postgresql" or s.attributes.get("db.system.name") == "postgresql"
    ]
    assert publish and run, sorted({(s.name, str(s.kind)) for s in finished})
    worker_queries = [q for q in queries if q.start_time >= run[0].start_time and q.end_time <= run[0].end_time]
    assert worker_queries, "no database span inside the worker's run"
    assert any(_ledger_write(q) for q in worker_queries), "the credit's ledger insert is not in the trace"

    flow = Deposit.objects.get(provider="custody", reference="tx-traced").flow_id  # born with the deposit
    assert flow.startswith("dep-"), flow
    assert server[0].attributes.get("flow_id") == flow
    assert publish[0].attributes.get("flow_id") == flow and run[0].attributes.get("flow_id") == flow
    assert all(q.attributes.get("flow_id") == flow for q in worker_queries)
    worker_spans = [s for s in in_trace if s.start_time >= run[0].start_time and s.end_time <= run[0].end_time]
    assert {s.attributes.get("flow_id") for s in worker_spans} == {flow}
    assert {s.attributes.get("flow_id") for s in finished} - {None} == {flow}  # no other flow was seen

    hex_id = format(trace_id, "032x")
    lines = [r for r in records.records if r.getMessage().startswith("Signature Verified")]
    assert lines and all(r.trace_id == hex_id for r in lines)
    flow_lines = [r for r in records.records if r.flow_id == flow]
    assert flow_lines and all(r.trace_id == hex_id for r in flow_lines)
    print(f"trace {hex_id}: {len(in_trace)} spans; {len(flow_lines)} log lines carry {flow}")


def test_nothing_is_instrumented_without_an_otlp_endpoint(settings: Any) -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    settings.OTEL_EXPORTER_OTLP_ENDPOINT = ""
    assert tracing_init() is None
    assert not DjangoInstrumentor().is_instrumented_by_opentelemetry
    assert not any("opentelemetry" in m for m in settings.MIDDLEWARE)


def test_sentry_reports_only_when_a_dsn_is_set(settings: Any) -> None:
    import sentry_sdk

    from ops.tracing import sentry_init

    settings.SENTRY_DSN = ""
    assert sentry_init() is False
    assert sentry_sdk.get_client().dsn is None
    settings.SENTRY_DSN = "http://publickey@127.0.0.1:9/1"
    try:
        assert sentry_init() is True
        client = sentry_sdk.get_client()
        assert client.is_active() and str(client.dsn) == settings.SENTRY_DSN
        assert not client.should_send_default_pii()
    finally:
        sentry_sdk.init()  # no DSN: nothing is sent
    assert sentry_sdk.get_client().dsn is None
    assert sentry_sdk.get_client().transport is None


def test_a_deposit_credited_in_its_request_is_in_the_request_trace(spans: Any, player: Any) -> None:
    from opentelemetry.trace import SpanKind

    delivery = custody_delivery(custody_payload(player, amount_u=4_000_000, reference="tx-traced-now"))
    response = Client().post(CUSTODY_URL, data=delivery.body, content_type="application/json", headers=delivery.headers)
    assert response.status_code == 202, response.content
    assert available(player, "USDC") == 4_000_000  # credited when the answer returned

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST webhooks/deposits"]
    assert len(server) == 1
    in_trace = [s for s in finished if s.context.trace_id == server[0].context.trace_id]
    assert not [s for s in in_trace if "process_webhook_event" in s.name]  # nothing was sent to a worker
    ledger_inserts = [s for s in in_trace if _ledger_write(s)]
    assert ledger_inserts, "the credit's ledger insert is not in the request's trace"
    flow = Deposit.objects.get(provider="custody", reference="tx-traced-now").flow_id
    assert server[0].attributes.get("flow_id") == flow
    assert all(s.attributes.get("flow_id") == flow for s in ledger_inserts)
