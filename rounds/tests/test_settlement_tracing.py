"""A round's settlement is one flow: its id is stored on the round when settlement starts (the same for every
retry while the oracle has no price), and the settlement's span, its queries and its log lines carry it; what
the tick does after the settlement (opening the next round) does not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from ops.tests.tracing import Records, in_memory_spans
from ops.tracing import flow_reset
from rounds.models import Round
from rounds.tasks import rounds_tick

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans() -> Iterator[Any]:
    with in_memory_spans() as exporter:
        yield exporter


@pytest.fixture
def fresh_job() -> Iterator[None]:
    """Run what follows as a job of its own: no flow bound by the bets the test placed before."""
    from opentelemetry import context

    flow_reset()
    token = context.attach(context.Context())
    try:
        yield
    finally:
        context.detach(token)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _query(span: Any) -> str:
    return str(span.attributes.get("db.statement", span.attributes.get("db.query.text", "")))


def test_the_tick_settles_a_round_as_one_flow(
    spans: Any,
    records: Records,
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
    prices: Any,
    request: Any,
) -> None:
    round_obj = open_round("20250908")
    bets = [place(round_obj, "UP", 2_000_000), place(round_obj, "DOWN", 1_000_000)]
    lock_and_reach_settlement(round_obj)
    assert Round.objects.get(pk=round_obj.pk).settlement_flow_id is None  # no settlement has started yet

    request.getfixturevalue("fresh_job")  # the beat's job starts with no flow bound
    report = rounds_tick()  # no close price yet: the settlement starts and waits
    assert report["pending"] and not report["settled"]
    flow = Round.objects.get(pk=round_obj.pk).settlement_flow_id
    assert flow and flow.startswith("stl-"), flow
    assert flow not in {b.flow_id for b in bets}

    prices.set(date(2025, 9, 8), "101")
    spans.clear()
    records.records.clear()
    report = rounds_tick()
    assert report["settled"] == ["20250908:UP"] and report["opened"] == ["20250909"]
    assert Round.objects.get(pk=round_obj.pk).settlement_flow_id == flow  # the retry kept its flow

    finished = spans.get_finished_spans()
    [settle] = [s for s in finished if s.name == "round.settle"]
    assert settle.attributes["flow_id"] == flow and settle.attributes["round.code"] == "20250908"
    inside = [
        s
        for s in finished
        if s.context.trace_id == settle.context.trace_id
        and s is not settle
        and s.start_time >= settle.start_time
        and s.end_time <= settle.end_time
    ]
    assert any("UPDATE" in _query(s) and "rounds_bet" in _query(s) for s in inside), "no settlement statement"
    assert {s.attributes.get("flow_id") for s in inside} == {flow}
    outside = [s for s in finished if s.start_time > settle.end_time]
    assert outside and all("flow_id" not in s.attributes for s in outside)  # opening the next round

    [settled_line] = [r for r in records.records if r.getMessage().startswith("round 20250908 SETTLED")]
    assert getattr(settled_line, "flow_id") == flow  # noqa: B009 (set by the logging filter)
    assert getattr(settled_line, "trace_id") == format(settle.context.trace_id, "032x")  # noqa: B009


def test_a_voided_round_settles_in_its_own_flow(
    spans: Any,
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    make_staff: Callable[..., Any],
    request: Any,
) -> None:
    from rounds.overrides import round_void

    round_obj = open_round("20250908")
    place(round_obj, "UP", 1_000_000)
    request.getfixturevalue("fresh_job")
    round_void(code="20250908", reason="feed corrupted", acting_user=make_staff(role="finance"))
    voided = Round.objects.get(pk=round_obj.pk)
    assert voided.settlement_flow_id is not None
    assert voided.status == Round.Status.VOID and voided.settlement_flow_id.startswith("stl-")
    [settle] = [s for s in spans.get_finished_spans() if s.name == "round.settle"]
    assert settle.attributes["flow_id"] == voided.settlement_flow_id
    assert settle.attributes["round.void"] is True
