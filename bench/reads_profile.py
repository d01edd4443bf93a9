#!/usr/bin/env python
"""Profile: the hot reads in one process, through Django's test client, beside /health in the same run.

    BENCH_DB=bench_reads_profile .venv/bin/python bench/reads_profile.py [--reads 200] [--players 200]

In its own database ($BENCH_DB, dropped and re-created, real migrations; local settings with DEBUG off) it
opens a round (bench/api.py's `open_round`), funds `--players` players with a bet each and a knox token.
Then it times `--reads` requests of each path (after 20 unmeasured ones) and prints the mean wall-clock and
this process's CPU milliseconds per request (CPU: the Python side, steadier on a loaded machine; the
database's own time is not in it) and their ratios to /health:

- `/health` (one `SELECT 1`: the floor), `/v1/rounds/current` (public), `/v1/wallet` with one player's
  token (as a client polling its wallet) and rotating through every player's token (each token cold);
- each as deployed (the per-process caches of `ops.ttl` on, AUTH_TOKEN_CACHE_S etc. as set) and with
  every bound set to 0 (every read cold: what a cache miss costs).

Then cProfile of `--reads` cold round reads (the top functions by own time and by cumulative time).
Speed is printed, never asserted (see bench/api.py under wrk for throughput and p99 across processes).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = os.environ.get("BENCH_DB", "bench_reads_profile")
BOUNDS = ("AUTH_TOKEN_CACHE_S", "SWITCH_CACHE_S", "ROUND_OPEN_CACHE_S")
WARMUP = 20


def setup(players: int) -> list[str]:
    """Fresh database, an open round, funded players with a bet and a token each; return the tokens."""
    from _common import psql

    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from api import open_round
    from django.core.management import call_command
    from django.test.utils import setup_test_environment
    from knox.models import AuthToken

    from accounts.models import User
    from ledger.services import external_account, transfer, user_account
    from ops.actors import SystemActor
    from rounds.betting import bet_place

    setup_test_environment(debug=False)
    call_command("migrate", verbosity=0)
    round_obj = open_round(seconds_needed=120)
    psp = external_account(provider="bench", currency=round_obj.currency)
    users = User.objects.bulk_create(User(email=f"bench-reads-{i}@example.com") for i in range(players))
    tokens = []
    for i, user in enumerate(users):
        transfer(
            source=psp,
            destination=user_account(user=user, currency=round_obj.currency),
            amount_u=10 * round_obj.min_stake_u,
            type="deposit",
            reference=f"bench-fund:{i}",
            actor=SystemActor("bench"),
        )
        bet_place(user=user, code=round_obj.code, side="UP" if i % 2 else "DOWN", stake_u=round_obj.min_stake_u)
        tokens.append(AuthToken.objects.create(user=user)[1])
    return tokens


def clients(tokens: list[str]) -> dict[str, Callable[[], Any]]:
    """One callable per measured read; each asserts its answer is a 200."""
    from django.test import Client

    anonymous = Client()
    own = Client(HTTP_AUTHORIZATION=f"Token {tokens[0]}")
    rotating = [Client(HTTP_AUTHORIZATION=f"Token {token}") for token in tokens]
    turn = iter(range(10**9))

    def get(client: Any, path: str) -> Callable[[], Any]:
        def read() -> Any:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.content[:300])
            return response

        return read

    def rotate() -> Any:
        return get(rotating[next(turn) % len(rotating)], "/v1/wallet")()

    return {
        "/health": get(anonymous, "/health"),
        "/v1/rounds/current": get(anonymous, "/v1/rounds/current"),
        "/v1/wallet (one token)": get(own, "/v1/wallet"),
        "/v1/wallet (rotating tokens)": rotate,
    }


def mean_ms(read: Callable[[], Any], reads: int) -> tuple[float, float]:
    """Mean wall-clock and this process's CPU milliseconds per request (the CPU figure ignores other load)."""
    for _ in range(WARMUP):
        read()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(reads):
        read()
    return (time.perf_counter() - started) * 1000 / reads, (time.process_time() - cpu) * 1000 / reads


def table(title: str, reads: dict[str, Callable[[], Any]], count: int) -> None:
    figures = {name: mean_ms(read, count) for name, read in reads.items()}
    wall, cpu = figures["/health"]
    print(f"\n{title}: mean per request over {count} reads; ratio = /health's figure / this one's")
    print(f"  {'path':32} {'wall ms':>8} {'ratio':>6} {'CPU ms':>8} {'ratio':>6}")
    for name, (ms, cpu_ms) in figures.items():
        print(f"  {name:32} {ms:8.2f} {wall / ms:6.2f} {cpu_ms:8.2f} {cpu / cpu_ms:6.2f}")


def profile(read: Callable[[], Any], reads: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reads):
        read()
    profiler.disable()
    for key, restriction in (("tottime", ""), ("cumulative", f"{ROOT}/(rounds|ledger|accounts|ops)/")):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(restriction, 12)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        where = " (the project's own functions)" if restriction else ""
        print(f"\ncProfile of {reads} cold /v1/rounds/current reads, by {key}{where}; {lines[0].strip()}:")
        print("\n".join(line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "") for line in lines[start:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--players", type=int, default=200)
    args = parser.parse_args()
    tokens = setup(args.players)
    from django.conf import settings
    from django.test import override_settings

    reads = clients(tokens)
    bounds = {name: getattr(settings, name, None) for name in BOUNDS}
    table(f"as deployed ({', '.join(f'{k}={v}' for k, v in bounds.items())})", reads, args.reads)
    with override_settings(**dict.fromkeys(BOUNDS, 0)):
        table("every read cold (every bound 0)", reads, args.reads)
        profile(reads["/v1/rounds/current"], args.reads)
    print(f"\n(database {DB}; python {sys.version.split()[0]}; load {Path('/proc/loadavg').read_text().strip()})")


if __name__ == "__main__":
    main()
