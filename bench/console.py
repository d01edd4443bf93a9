#!/usr/bin/env python
"""Benchmark: the operator's console home page over a million bets, beside floors measured in the same run.

In its own database (`bench_console`, or $BENCH_DB; dropped and re-created; Django test settings, real
migrations) it generates a million bets' worth of rows with set-based SQL (`ops/tests/bulk_rows.py`, the
rows the query-count test uses: 31 rounds, ~32,000 players and their accounts, 1,000,000 bets, 3,000
deposits with their journals and entries, 1,000 withdrawals, their payout attempts), then times, each the
median of `--runs`:

- page: GET /admin/ as a finance operator (Django's test client: session, permissions, every figure,
  template rendering), and the `dashboard()` selector alone;
- floor 1: as many `SELECT 1` round trips as the page makes queries (the cost of the query count itself);
- floor 2: `tvl_by_currency()`, the cheapest figure the page must show (one scan of the accounts);
- for contrast, what summing the bets would cost (one grouped scan of rounds_bet), which the page never does.

Goal: the page under 300 ms. Prints the ratios to the floors (machines here are shared and noisy).

    .venv/bin/python bench/console.py [--bets 1000000] [--runs 7] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Figure, write_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = os.environ.get("BENCH_DB", "bench_console")
GOAL_S = 0.300


def psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql], check=True)


def median(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from accounts.tests.factories import StaffFactory
    from ledger.selectors import tvl_by_currency
    from ops.console.selectors import dashboard
    from ops.tests.bulk_rows import generate

    setup_test_environment()
    try:
        call_command("migrate", verbosity=0)
        started = time.monotonic()
        with transaction.atomic():
            figures = generate(bets=args.bets)
        print(f"generated {figures} in {time.monotonic() - started:.1f} s")
        client = Client()
        client.force_login(StaffFactory(role="finance"))
        assert client.get("/admin/").status_code == 200  # warm: templates, permissions cache, plans
        with CaptureQueriesContext(connection) as captured:
            client.get("/admin/")
        queries = len(captured.captured_queries)

        def round_trips() -> None:
            with connection.cursor() as cursor:
                for _ in range(queries):
                    cursor.execute("SELECT 1")

        def sum_bets() -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT round_id, SUM(stake_u) FROM rounds_bet GROUP BY round_id")
                cursor.fetchall()

        page = median(lambda: client.get("/admin/"), args.runs)
        selector = median(dashboard, args.runs)
        floor_trips = median(round_trips, args.runs)
        floor_tvl = median(tvl_by_currency, args.runs)
        naive = median(sum_bets, max(3, args.runs // 2))
        print(f"GET /admin/ (dashboard page):          {page * 1000:8.1f} ms  ({queries} queries)")
        print(f"dashboard() selector alone:           {selector * 1000:8.1f} ms")
        print(
            f"floor 1: {queries} x SELECT 1 round trips:   {floor_trips * 1000:8.1f} ms  page/floor1 = {page / floor_trips:.1f}"
        )
        print(
            f"floor 2: tvl_by_currency():            {floor_tvl * 1000:8.1f} ms  page/floor2 = {page / floor_tvl:.1f}"
        )
        print(f"contrast: SUM over rounds_bet:         {naive * 1000:8.1f} ms  (never done by the page)")
        print(f"goal: page under {GOAL_S * 1000:.0f} ms: {'PASS' if page < GOAL_S else 'FAIL'}")
        write_figures(
            "console",
            [
                Figure(
                    f"GET /admin/ (console home, {args.bets:,} bets)",
                    round(page * 1000, 1),
                    "ms",
                    f"{queries} x SELECT 1 {floor_trips * 1000:.1f} ms",
                    round(page / floor_trips, 1),
                    f"< {GOAL_S * 1000:.0f} ms",
                    page < GOAL_S,
                ),
                Figure(
                    "GET /admin/ vs the cheapest figure it shows",
                    round(page * 1000, 1),
                    "ms",
                    f"tvl_by_currency() {floor_tvl * 1000:.1f} ms",
                    round(page / floor_tvl, 1),
                ),
                Figure("dashboard() selector alone", round(selector * 1000, 1), "ms"),
            ],
        )
    finally:
        connection.close()
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {DB}")


if __name__ == "__main__":
    main()
