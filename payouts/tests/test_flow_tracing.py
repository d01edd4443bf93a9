"""One flow, one id, with the OpenTelemetry SDK's in-memory exporter: a withdrawal from its request to its paid
webhook yields spans across web, worker and the PSP call that share one `flow_id`, and the flow's log lines
carry it. (The deposit's trace, webhook to credit, is in ops/tests/test_tracing.py.)"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ops.tests.tracing import Records, in_memory_spans
from payouts.models import Withdrawal
from payouts.tests.helpers import destination_for

from .helpers import send_adyen_transfer

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def spans() -> Iterator[Any]:
    with in_memory_spans() as exporter:
        yield exporter


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_withdrawal_is_one_flow_from_request_to_paid_webhook(
    spans: Any,
    stub: Any,
    celery_worker_on_redis: Any,
    funded_player: Any,
    finance: Any,
    api_client_for: Any,
) -> None:
    from opentelemetry.trace import SpanKind

    records = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(records)
    root.setLevel(logging.INFO)
    try:
        created = (
            api_client_for(funded_player)
            .post(
                "/v1/withdrawals",
                {
                    "amount_u": 10_000_000,
                    "currency": "USDC",
                    "provider": "adyen",
                    "destination": destination_for("adyen"),
                },
                format="json",
                HTTP_IDEMPOTENCY_KEY="flow-traced",
            )
            .json()
        )
        assert api_client_for(finance).post(f"/v1/withdrawals/{created['id']}/approve").status_code == 200
        wait_for(lambda: Withdrawal.objects.filter(pk=created["id"]).exclude(psp_reference="").exists())
        assert send_adyen_transfer(stub.objects("adyen_transfer")[0], "booked").json()["result"] == "paid"
        time.sleep(0.5)
    finally:
        root.removeHandler(records)
        root.setLevel(level)
    withdrawal = Withdrawal.objects.get(pk=created["id"])
    assert withdrawal.state == Withdrawal.State.PAID

    flow = withdrawal.flow_id  # stored on the record when the request created it
    assert flow.startswith("wd-"), flow
    [transfer] = stub.objects("adyen_transfer")
    assert transfer["description"] == f"Withdrawal {withdrawal.pk} flow {flow}"  # the PSP keeps it
    finished = spans.get_finished_spans()
    in_flow = [s for s in finished if s.attributes.get("flow_id") == flow]
    servers = {s.name for s in in_flow if s.kind == SpanKind.SERVER}
    assert servers == {
        "POST v1/withdrawals",
        "POST v1/withdrawals/<int:withdrawal_id>/approve",
        "POST webhooks/payouts/adyen",
    }, servers
    assert any(s.kind == SpanKind.PRODUCER and "submit_payout" in s.name for s in in_flow), "no publish span"
    assert any(s.kind == SpanKind.CONSUMER and "submit_payout" in s.name for s in in_flow), "no worker span"
    psp_calls = [
        s
        for s in in_flow
        if s.kind == SpanKind.CLIENT
        and s.attributes.get("http.method", s.attributes.get("http.request.method")) == "POST"
        and "db.system" not in s.attributes
    ]
    assert psp_calls, sorted({(s.name, str(s.kind)) for s in finished if s.kind == SpanKind.CLIENT})
    other_flows = {s.attributes.get("flow_id") for s in finished} - {flow, None}
    assert not any(f.startswith(("wd-", "withdrawal:")) for f in other_flows), other_flows

    # Every span of the worker's run (the task, its queries, the PSP call) carries the stored flow id.
    runs = [s for s in finished if s.kind == SpanKind.CONSUMER and "submit_payout" in s.name]
    assert runs
    for run in runs:
        inside = [
            s
            for s in finished
            if s.context.trace_id == run.context.trace_id
            and s.start_time >= run.start_time
            and s.end_time <= run.end_time
        ]
        assert len(inside) > 1 and {s.attributes.get("flow_id") for s in inside} == {flow}, inside
    # The paid webhook's spans from the moment it found the withdrawal carry it too.
    [webhook] = [s for s in in_flow if s.kind == SpanKind.SERVER and s.name == "POST webhooks/payouts/adyen"]
    locked = [
        s
        for s in finished
        if s.context.trace_id == webhook.context.trace_id
        and "FOR UPDATE" in str(s.attributes.get("db.statement", s.attributes.get("db.query.text", "")))
        and "payouts_withdrawal" in str(s.attributes.get("db.statement", s.attributes.get("db.query.text", "")))
    ]
    assert locked
    after = [
        s
        for s in finished
        if s.context.trace_id == webhook.context.trace_id and s.start_time > locked[0].end_time and s is not webhook
    ]
    assert after and {s.attributes.get("flow_id") for s in after} == {flow}

    flow_lines = [r for r in records.records if r.flow_id == flow]
    assert flow_lines, "no log line carries the flow"
    worker_traces = {format(s.context.trace_id, "032x") for s in in_flow if s.kind == SpanKind.CONSUMER}
    assert any(r.trace_id in worker_traces for r in flow_lines), "no worker log line carries the flow"
    payout_lines = [r for r in records.records if r.getMessage().startswith(f"payout of withdrawal {withdrawal.pk} ")]
    assert payout_lines and all(r.flow_id == flow for r in payout_lines), [r.flow_id for r in payout_lines]
    print(f"{flow}: {len(in_flow)} spans; servers {sorted(servers)}; {len(flow_lines)} log lines")
