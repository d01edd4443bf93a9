"""Tests for rounds.domain.oracle against a stdlib HTTP server on 127.0.0.1."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rounds.domain.oracle import (
    HttpJsonPriceSource,
    OracleAnswer,
    OracleConfigError,
    OracleDisagreement,
    OracleUnavailable,
    OracleVoid,
    PriceSource,
    PriceUnavailable,
    StaticPriceSource,
    oracle_deadline,
    resolve_close,
    resolve_close_or_void,
)
from rounds.domain.pool import VoidReason

DAY = date(2025, 11, 28)
NOW = datetime(2025, 11, 28, 18, 6, tzinfo=UTC)
Route = tuple[int, bytes, float]


class PriceServer(ThreadingHTTPServer):
    """A tiny JSON server whose responses are set per path by the test."""

    daemon_threads = True
    routes: dict[str, Route]
    hits: list[str]

    def handle_error(self, request: object, client_address: object) -> None:
        """Ignore clients that hung up (the timeout tests do so on purpose)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Handler(BaseHTTPRequestHandler):
    """Serve the configured (status, body, delay) for the request path."""

    server: PriceServer

    def do_GET(self) -> None:
        """Answer from the route table; 404 for unknown paths."""
        self.server.hits.append(self.path)
        status, body, delay = self.server.routes.get(self.path, (404, b"{}", 0.0))
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PriceServer]:
    """Run a PriceServer on 127.0.0.1, port chosen by the OS."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    srv = PriceServer(("127.0.0.1", 0), Handler)
    srv.routes, srv.hits = {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def base(srv: PriceServer) -> str:
    """Return the base URL of the test server."""
    return f"http://127.0.0.1:{srv.server_address[1]}"


def source(srv: PriceServer, name: str, field_path: str = "data.close", timeout: float = 2.0) -> HttpJsonPriceSource:
    """Return an HTTP source ``name`` reading /{name}/{instrument}/{date}."""
    return HttpJsonPriceSource(
        name=name,
        url_template=f"{base(srv)}/{name}/{{instrument}}/{{date}}",
        field_path=field_path,
        timeout=timeout,
    )


def route(srv: PriceServer, name: str, body: str, status: int = 200, delay: float = 0.0) -> None:
    """Configure the response for source ``name`` on DAY."""
    srv.routes[f"/{name}/NDX/2025-11-28"] = (status, body.encode(), delay)


def clock() -> datetime:
    """Return a fixed instant for evidence timestamps."""
    return NOW


# ---------------------------------------------------------------- HttpJsonPriceSource


def test_price_parsed_as_exact_decimal(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.10000000000000000001}}')
    price = source(server, "a").fetch_close(instrument="NDX", day=DAY)
    assert price == Decimal("21010.10000000000000000001") and isinstance(price, Decimal)


def test_url_template_fills_instrument_and_date(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 1}}')
    src = source(server, "a")
    assert src.url_for(instrument="NDX", day=DAY).endswith("/a/NDX/2025-11-28")
    src.fetch_close(instrument="NDX", day=DAY)
    assert server.hits == ["/a/NDX/2025-11-28"]
    assert (
        HttpJsonPriceSource("x", "http://h/{instrument}?d={date}", "c").url_for(instrument="^NDX/1", day=DAY)
        == "http://h/%5ENDX%2F1?d=2025-11-28"
    )


def test_list_index_in_field_path(server: PriceServer) -> None:
    route(server, "a", '{"results": [{"c": 20999.75}, {"c": 1}]}')
    assert source(server, "a", "results.0.c").fetch_close(instrument="NDX", day=DAY) == Decimal("20999.75")


def test_integer_and_string_prices(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21000}}')
    route(server, "b", '{"data": {"close": "21000.25"}}')
    assert source(server, "a").fetch_close(instrument="NDX", day=DAY) == Decimal(21000)
    assert source(server, "b").fetch_close(instrument="NDX", day=DAY) == Decimal("21000.25")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 200),
        ('{"data": {"close": NaN}}', 200),
        ('{"data": {"close": null}}', 200),
        ('{"data": {"close": true}}', 200),
        ('{"data": {"close": -5}}', 200),
        ('{"data": {"close": "1e3"}}', 200),
        ('{"data": {}}', 200),
        ('{"data": [1]}', 200),
        ('{"data": {"close": 1}}', 500),
        ('{"data": {"close": 1}}', 404),
    ],
)
def test_unusable_responses_raise_price_unavailable(server: PriceServer, body: str, status: int) -> None:
    route(server, "a", body, status=status)
    with pytest.raises(PriceUnavailable):
        source(server, "a").fetch_close(instrument="NDX", day=DAY)


def test_timeout_raises_price_unavailable(server: PriceServer) -> None:
    route(server, "slow", '{"data": {"close": 1}}', delay=1.0)
    started = time.monotonic()
    with pytest.raises(PriceUnavailable, match="request failed"):
        source(server, "slow", timeout=0.2).fetch_close(instrument="NDX", day=DAY)
    assert time.monotonic() - started < 0.9


def test_connection_refused_raises_price_unavailable() -> None:
    srv = PriceServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    srv.server_close()
    dead = HttpJsonPriceSource("dead", f"http://127.0.0.1:{port}/x", "c", timeout=1.0)
    with pytest.raises(PriceUnavailable):
        dead.fetch_close(instrument="NDX", day=DAY)


def test_http_source_satisfies_protocol(server: PriceServer) -> None:
    assert isinstance(source(server, "a"), PriceSource)
    assert isinstance(StaticPriceSource(name="s", prices={}), PriceSource)


# ---------------------------------------------------------------- resolve_close


def test_two_sources_agree(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.25}}')
    route(server, "b", '{"data": {"close": 21010.2500}}')
    answer = resolve_close(
        sources=[source(server, "a"), source(server, "b")],
        instrument="NDX",
        day=DAY,
        clock=clock,
    )
    assert isinstance(answer, OracleAnswer)
    assert answer.price == Decimal("21010.25")
    assert [e.as_dict() for e in answer.evidence] == [
        {
            "source": "a",
            "price": "21010.25",
            "fetched_at": "2025-11-28T18:06:00Z",
            "url": f"{base(server)}/a/NDX/2025-11-28",
            "error": None,
        },
        {
            "source": "b",
            "price": "21010.25",
            "fetched_at": "2025-11-28T18:06:00Z",
            "url": f"{base(server)}/b/NDX/2025-11-28",
            "error": None,
        },
    ]


def test_disagreement_raises_with_evidence(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.25}}')
    route(server, "b", '{"data": {"close": 21010.26}}')
    with pytest.raises(OracleDisagreement) as info:
        resolve_close(
            sources=[source(server, "a"), source(server, "b")],
            instrument="NDX",
            day=DAY,
        )
    assert [e.price for e in info.value.evidence] == [
        Decimal("21010.25"),
        Decimal("21010.26"),
    ]


def test_one_missing_is_unavailable(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.25}}')
    with pytest.raises(OracleUnavailable) as info:
        resolve_close(
            sources=[source(server, "a"), source(server, "b")],
            instrument="NDX",
            day=DAY,
        )
    a, b = info.value.evidence
    assert a.price == Decimal("21010.25") and a.error is None
    assert b.price is None and b.error is not None and "HTTP 404" in b.error


def test_malformed_second_source_is_unavailable(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.25}}')
    route(server, "b", "<html>oops</html>")
    with pytest.raises(OracleUnavailable):
        resolve_close(
            sources=[source(server, "a"), source(server, "b")],
            instrument="NDX",
            day=DAY,
        )


def test_server_error_is_unavailable(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.25}}')
    route(server, "b", '{"error": "boom"}', status=500)
    with pytest.raises(OracleUnavailable):
        resolve_close(
            sources=[source(server, "a"), source(server, "b")],
            instrument="NDX",
            day=DAY,
        )


def test_timeout_is_unavailable(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.25}}')
    route(server, "b", '{"data": {"close": 21010.25}}', delay=1.0)
    sources = [source(server, "a"), source(server, "b", timeout=0.2)]
    with pytest.raises(OracleUnavailable):
        resolve_close(sources=sources, instrument="NDX", day=DAY)


def test_third_source_missing_still_agrees(server: PriceServer) -> None:
    route(server, "a", '{"data": {"close": 21010.25}}')
    route(server, "b", '{"data": {"close": 21010.25}}')
    route(server, "c", "{}", status=503)
    sources = [source(server, "a"), source(server, "b"), source(server, "c")]
    assert resolve_close(sources=sources, instrument="NDX", day=DAY).price == Decimal("21010.25")


def test_any_dissent_blocks_even_with_a_majority(server: PriceServer) -> None:
    for name, price in (("a", "21010.25"), ("b", "21010.25"), ("c", "21010.3")):
        route(server, name, f'{{"data": {{"close": {price}}}}}')
    sources = [source(server, n) for n in "abc"]
    with pytest.raises(OracleDisagreement):
        resolve_close(sources=sources, instrument="NDX", day=DAY)


def test_source_configuration_errors() -> None:
    one = StaticPriceSource(name="s", prices={("NDX", DAY): Decimal(1)})
    with pytest.raises(OracleConfigError):
        resolve_close(sources=[one], instrument="NDX", day=DAY)
    with pytest.raises(OracleConfigError):
        resolve_close(sources=[one, one], instrument="NDX", day=DAY)
    with pytest.raises(OracleConfigError):
        resolve_close(sources=[one, one], instrument="NDX", day=DAY, min_agreeing=1)


def test_static_sources() -> None:
    a = StaticPriceSource(name="a", prices={("NDX", DAY): Decimal("21010.25")})
    b = StaticPriceSource(name="manual", prices={("NDX", DAY): Decimal("21010.25")})
    answer = resolve_close(sources=[a, b], instrument="NDX", day=DAY, clock=clock)
    assert answer.price == Decimal("21010.25")
    assert answer.evidence[1].as_dict()["url"] == "static:manual"
    with pytest.raises(PriceUnavailable):
        a.fetch_close(instrument="NDX", day=DAY + timedelta(days=1))
    with pytest.raises(TypeError):
        StaticPriceSource(name="f", prices={("NDX", DAY): 21010.25})  # type: ignore[dict-item]


# ---------------------------------------------------------------- deadline / void


def test_failure_before_deadline_reraises_for_retry() -> None:
    a = StaticPriceSource(name="a", prices={("NDX", DAY): Decimal(1)})
    b = StaticPriceSource(name="b", prices={})
    with pytest.raises(OracleUnavailable):
        resolve_close_or_void(
            sources=[a, b],
            instrument="NDX",
            day=DAY,
            deadline=NOW + timedelta(seconds=1),
            clock=clock,
        )


def test_failure_after_deadline_voids() -> None:
    a = StaticPriceSource(name="a", prices={("NDX", DAY): Decimal(1)})
    b = StaticPriceSource(name="b", prices={("NDX", DAY): Decimal(2)})
    result = resolve_close_or_void(sources=[a, b], instrument="NDX", day=DAY, deadline=NOW, clock=clock)
    assert isinstance(result, OracleVoid)
    assert result.reason is VoidReason.ORACLE_FAILURE
    assert len(result.evidence) == 2 and "disagree" in result.detail


def test_success_after_deadline_still_answers() -> None:
    a = StaticPriceSource(name="a", prices={("NDX", DAY): Decimal(1)})
    b = StaticPriceSource(name="b", prices={("NDX", DAY): Decimal("1.0")})
    result = resolve_close_or_void(sources=[a, b], instrument="NDX", day=DAY, deadline=NOW, clock=clock)
    assert isinstance(result, OracleAnswer) and result.price == 1


def test_oracle_deadline() -> None:
    close = datetime(2025, 11, 28, 18, 0, tzinfo=UTC)
    assert oracle_deadline(close_utc=close) == close + timedelta(hours=2)
    assert oracle_deadline(close_utc=close, grace=timedelta(minutes=30)) == close + timedelta(minutes=30)
