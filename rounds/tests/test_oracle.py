"""AUTO settlement from the oracle: agreement, retries, operator prices, the deadline void."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ledger.models import Account
from ops.actors import BEAT
from ops.approvals import SecondOperatorRequired, decision_approve
from ops.errors import Forbidden
from rounds import errors
from rounds.models import OracleObservation, Round
from rounds.overrides import oracle_price_propose
from rounds.settlement import round_settle

pytestmark = pytest.mark.django_db


@pytest.fixture
def locked(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    lock_and_reach_settlement: Callable[..., Any],
) -> tuple[Round, list[Any]]:
    round_obj = open_round("20250908", reference="100")
    bets = [place(round_obj, "UP", 2_000_000), place(round_obj, "DOWN", 3_000_000)]
    lock_and_reach_settlement(round_obj)
    return round_obj, bets


def test_missing_or_disagreeing_prices_are_retried(locked: Any, prices: Any) -> None:
    round_obj, _ = locked
    day = round_obj.open_at.date()
    prices.set(day, "101", source="src-a")
    with pytest.raises(errors.OraclePending):
        round_settle(code=round_obj.code, acting_user=BEAT)
    prices.set(day, "101.01", source="src-b")
    with pytest.raises(errors.OraclePending):
        round_settle(code=round_obj.code, acting_user=BEAT)
    round_obj.refresh_from_db()
    assert round_obj.status == Round.Status.LOCKED and round_obj.oracle_attempts == 2
    assert Account.objects.get(pk=round_obj.pool_account_id).balance_u == 5_000_000
    assert OracleObservation.objects.filter(round=round_obj).count() == 4

    prices.set(day, "101", source="src-b")
    settled, changed = round_settle(code=round_obj.code, acting_user=BEAT)
    assert changed and settled.result == "UP" and settled.close_price == "101"
    assert {e["source"] for e in settled.price_evidence} == {"src-a", "src-b"}


def test_oracle_failure_voids_after_deadline_and_a_late_price_changes_nothing(
    locked: Any,
    prices: Any,
    clock: Any,
    settings: Any,
    assert_ledger_ok: Callable[[], None],
    make_staff: Callable[..., Any],
) -> None:
    round_obj, bets = locked
    settings.ORACLE_DEADLINE_MINUTES = 60
    clock.set(round_obj.close_at + timedelta(minutes=59, seconds=59))
    with pytest.raises(errors.OraclePending):
        round_settle(code=round_obj.code, acting_user=BEAT)

    clock.set(round_obj.close_at + timedelta(minutes=60))
    voided, changed = round_settle(code=round_obj.code, acting_user=BEAT)
    assert changed and (voided.status, voided.void_reason) == (Round.Status.VOID, "ORACLE_FAILURE")
    assert [Account.objects.get(pk=b.account_id).balance_u for b in bets] == [2_000_000, 3_000_000]

    prices.set(round_obj.open_at.date(), "150")
    again, changed = round_settle(code=round_obj.code, acting_user=BEAT)
    assert not changed and again.void_reason == "ORACLE_FAILURE" and again.close_price == ""
    with pytest.raises(errors.RoundAlreadySettled):
        oracle_price_propose(code=round_obj.code, price="150", evidence="late", acting_user=make_staff(role="finance"))
    assert [Account.objects.get(pk=b.account_id).balance_u for b in bets] == [2_000_000, 3_000_000]
    assert_ledger_ok()


def test_operator_prices_count_as_sources(
    locked: Any,
    prices: Any,
    make_staff: Callable[..., Any],
    clock: Any,
) -> None:
    round_obj, _ = locked
    alice, bob, support = make_staff(role="finance"), make_staff(role="finance"), make_staff(role="support")
    prices.set(round_obj.open_at.date(), "99", source="src-a")  # only one configured source answers
    settle_time = clock.now
    clock.set(round_obj.close_at - timedelta(seconds=1))
    with pytest.raises(errors.MarketNotClosed):
        oracle_price_propose(code=round_obj.code, price="99", evidence="a guess", acting_user=alice)
    assert not OracleObservation.objects.filter(round=round_obj, kind=OracleObservation.Kind.OPERATOR).exists()
    clock.set(settle_time)
    with pytest.raises(Forbidden):
        oracle_price_propose(code=round_obj.code, price="99", evidence="nasdaq.com", acting_user=support)
    proposal = oracle_price_propose(
        code=round_obj.code, price="99.00", evidence="https://nasdaq.com/close", acting_user=alice
    )
    # Proposed, not applied: settlement does not see it (one source only), and alice cannot apply it herself.
    with pytest.raises(errors.OraclePending):
        round_settle(code=round_obj.code, acting_user=BEAT)
    with pytest.raises(SecondOperatorRequired):
        decision_approve(proposal_id=proposal.pk, acting_user=alice)
    assert not OracleObservation.objects.filter(round=round_obj, kind=OracleObservation.Kind.OPERATOR).exists()
    decision_approve(proposal_id=proposal.pk, acting_user=bob, reason="same close on nasdaq.com")
    with pytest.raises(errors.PriceAlreadyEntered):
        oracle_price_propose(code=round_obj.code, price="98", evidence="typo", acting_user=alice)
    with pytest.raises(errors.InvalidPrice):
        oracle_price_propose(code=round_obj.code, price="-1", evidence="x", acting_user=bob)

    settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)

    assert settled.result == "DOWN" and settled.close_price == "99"
    sources = {e["source"] for e in settled.price_evidence if e["price"]}
    assert sources == {"src-a", f"operator:{alice.email}"}


def test_configured_http_sources_settle_a_round(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    clock: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """settings.ORACLE_SOURCES -> HttpJsonPriceSource, against a local JSON server on 127.0.0.1."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rounds import oracle

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = {"/a/2025-09-08": {"close": 101.25}, "/b/2025-09-08": {"data": [{"c": "101.250"}]}}.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        round_obj = open_round("20250908", reference="100")
        place(round_obj, "UP", 1_000_000)
        place(round_obj, "DOWN", 1_000_000)
        base = f"http://127.0.0.1:{server.server_port}"
        settings.ORACLE_SOURCES = [
            {"name": "feed-a", "url": base + "/a/{date}", "field": "close"},
            {"name": "feed-b", "url": base + "/b/{date}", "field": "data.0.c"},
        ]
        monkeypatch.setattr("rounds.services.configured_sources", oracle.configured_sources)
        monkeypatch.setattr("rounds.settlement.configured_sources", oracle.configured_sources)
        clock.set(round_obj.lock_at)
        from rounds.services import round_lock

        round_lock(code=round_obj.code, acting_user=BEAT)
        clock.set(round_obj.settle_after)
        settled, _ = round_settle(code=round_obj.code, acting_user=BEAT)
    finally:
        server.shutdown()
    assert settled.result == "UP" and settled.close_price == "101.25"
    assert [e["url"] for e in settled.price_evidence] == [base + "/a/2025-09-08", base + "/b/2025-09-08"]
