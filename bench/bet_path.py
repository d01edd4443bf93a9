#!/usr/bin/env python
"""Benchmark: what one bet costs in this process, through the whole Django stack, beside the /health floor.

    .venv/bin/python bench/bet_path.py [--bets 300] [--profile 25] [--show-sql]

In its own database (`bench_bet_path`, or $BENCH_DB; dropped and re-created, real migrations) it opens a
round and funds players with tokens as `bench/api.py` does, then drives `POST /v1/rounds/{code}/bets`
through Django's test client (every middleware, token authentication, the view, the database; no HTTP
server, no other process), one fresh player and Idempotency-Key per bet, and prints:

- the time per request of `GET /health` (the floor: one `SELECT 1` through the same stack) and per bet,
  wall clock and this process's CPU, and their ratio to the floor;
- the SQL statements per answer (Django's CaptureQueriesContext, counted over their own batch of bets,
  not the timed one): a new bet, a replay of it (same key and body), a refusal (the player's second bet);
- with `--profile N`, the N functions with the most cumulative CPU time under cProfile over another batch;
  with `--show-sql`, the statements of one bet.

Nothing here is asserted: the figures are printed and written to artifacts/bench/bet_path.json, ratios
against the floor measured in the same run (machines here are shared; an absolute time alone means little).
Redis: $REDIS_URL, default db 13.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Figure, psql, write_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_DB", "bench_bet_path")

import api  # noqa: E402  (bench/api.py: the same database preparation; reads BENCH_DB)


def _timed(action: Callable[[], Any], times: int) -> tuple[float, float]:
    """Run `action` `times` times; return (wall ms, CPU ms) per run."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(times):
        action()
    return (time.perf_counter() - wall) * 1000 / times, (time.process_time() - cpu) * 1000 / times


class Bettor:
    """Posts one bet per fresh player (their tokens in order), each with a new Idempotency-Key."""

    def __init__(self, client: Any, code: str, tokens: list[str], stake_u: int) -> None:
        self.client, self.url, self.tokens, self.stake_u = client, f"/v1/rounds/{code}/bets", iter(tokens), stake_u
        self.last: tuple[str, str, dict[str, Any]] | None = None

    def post(self, token: str, key: str, body: dict[str, Any], expected: int) -> None:
        response = self.client.post(
            self.url,
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token}",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        if response.status_code != expected:
            raise SystemExit(f"a bet answered {response.status_code}, not {expected}: {response.content[:300]!r}")

    def new(self) -> None:
        token, key = next(self.tokens), uuid.uuid4().hex
        body = {"side": "UP" if len(key) % 2 else "DOWN", "stake_u": self.stake_u}
        self.post(token, key, body, 201)
        self.last = (token, key, body)

    def replay(self) -> None:
        assert self.last is not None
        self.post(*self.last, 201)

    def refused(self) -> None:
        assert self.last is not None
        token, _, body = self.last
        self.post(token, uuid.uuid4().hex, body, 409)  # rounds/already-bet


def _statements(action: Callable[[], Any], times: int) -> tuple[float, list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        for _ in range(times):
            action()
    return len(captured.captured_queries) / times, [query["sql"] for query in captured.captured_queries]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bets", type=int, default=300, help="bets in the timed batch (default 300)")
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions under cProfile")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of one bet")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    counted = 50
    players = args.bets + counted + (args.bets if args.profile else 0) + 20
    round_obj, tokens = api.prepare(players, seconds_needed=600)
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's host (testserver) is allowed
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the refused bets' 409s, one line each
    client = Client()
    bettor = Bettor(client, round_obj.code, tokens, round_obj.min_stake_u)

    def health() -> None:
        if client.get("/health").status_code != 200:
            raise SystemExit("GET /health did not answer 200")

    _timed(health, 20)
    _timed(bettor.new, 10)  # warm: imports, the first connection, caches
    health_wall, health_cpu = _timed(health, args.bets)
    bet_wall, bet_cpu = _timed(bettor.new, args.bets)
    per_bet, sql = _statements(bettor.new, counted)
    per_replay, _ = _statements(bettor.replay, counted)
    per_refusal, _ = _statements(bettor.refused, counted)
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"] * 3  # noqa: SIM115

    print(f"\n{args.bets} bets through Django's test client (all middleware), {os.cpu_count()} CPUs (shared)")
    print(f"load averages at the end: {' '.join(load)}")
    print(f"{'':<34} {'wall ms':>8} {'CPU ms':>8} {'/health':>8}")
    print(f"{'GET /health (the floor)':<34} {health_wall:8.2f} {health_cpu:8.2f} {1:8.1f}")
    print(f"{'POST /v1/rounds/{code}/bets':<34} {bet_wall:8.2f} {bet_cpu:8.2f} {bet_cpu / health_cpu:8.1f}  (CPU)")
    print(f"SQL statements per answer: new bet {per_bet:.1f}, replay {per_replay:.1f}, refusal {per_refusal:.1f}")
    if args.show_sql:
        print("\nThe statements of one bet:")
        for statement in sql[: round(per_bet)]:
            print(f"  {statement[:160]}")
    if args.profile:
        profiler = cProfile.Profile(time.process_time)  # CPU time: waiting for the database is not counted
        profiler.runcall(_timed, bettor.new, args.bets)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(f"\ncProfile (CPU time) over {args.bets} more bets (cumulative):\n{out.getvalue()}")

    from django.db import connections

    from ledger.reconciliation import ledger_breaches

    breaches = ledger_breaches()
    print(f"ledger invariants after the bets: {'; '.join(map(str, breaches)) if breaches else 'all hold'}")
    floor = f"GET /health {health_cpu:.2f} ms CPU"
    rows = [
        Figure("GET /health CPU per request (the floor)", round(health_cpu, 2), "ms"),
        Figure("POST bet wall per request", round(bet_wall, 2), "ms"),
        Figure("POST bet CPU per request", round(bet_cpu, 2), "ms", floor, round(bet_cpu / health_cpu, 2)),
        Figure("SQL statements per new bet", round(per_bet, 1), "statements"),
        Figure("SQL statements per replayed bet", round(per_replay, 1), "statements"),
        Figure("SQL statements per refused bet (already bet)", round(per_refusal, 1), "statements"),
        Figure("ledger invariants broken after the bets", len(breaches), "breaches", goal="0", met=not breaches),
    ]
    path = write_figures("bet_path", rows)
    print(f"figures: {path.relative_to(ROOT)}")
    connections.close_all()
    if not args.keep:
        psql(f"DROP DATABASE IF EXISTS {api.DB}")
    return 1 if breaches else 0


if __name__ == "__main__":
    raise SystemExit(main())
