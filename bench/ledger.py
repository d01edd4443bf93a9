#!/usr/bin/env python
"""Benchmark: ledger transfers per second through the service layer, beside pgbench's TPC-B.

Both run against the same PostgreSQL server with the same number of concurrent clients in the same
run, and the ratio is printed (the goal is 0.5 or better). Each ledger transfer is one
`ledger.services.transfer()` call: lock two accounts, insert a journal and two entries, update two
balances, commit, with the deferred zero-sum trigger firing at commit.

    .venv/bin/python bench/ledger.py [--clients 4] [--seconds 15] [--accounts 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import Figure, write_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = "postgres://postgres@127.0.0.1:5432"
LEDGER_DB = "bench_ledger"
PGBENCH_DB = "bench_pgbench"


def psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql], check=True)


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"{PG}/{LEDGER_DB}"
    import django

    django.setup()


def prepare_ledger(accounts: int) -> list[int]:
    """Create a fresh database, migrate, and fund `accounts` player accounts."""
    psql(f"DROP DATABASE IF EXISTS {LEDGER_DB}")
    psql(f"CREATE DATABASE {LEDGER_DB}")
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from ledger.services import external_account, transfer, user_account

    psp = external_account(provider="bench", currency="USDC")
    users = User.objects.bulk_create(User(email=f"bench{i}@example.com") for i in range(accounts))
    ids = []
    for i, user in enumerate(users):
        account = user_account(user=user, currency="USDC")
        transfer(source=psp, destination=account, amount_u=10**12, type="deposit", reference=f"fund-{i}")
        ids.append(account.pk)
    return ids


def ledger_worker(worker: int, account_ids: list[int], seconds: float, start_at: float, out: mp.Queue) -> None:
    """Transfer 1 unit between random accounts until the deadline; report the count."""
    import random

    setup_django()
    from django.db import connection

    from ledger.models import Account
    from ledger.services import transfer
    from ops.actors import SystemActor

    accounts = {a.pk: a for a in Account.objects.filter(pk__in=account_ids)}
    rng = random.Random(worker)
    connection.ensure_connection()
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    done = 0
    while time.time() < deadline:
        src, dst = rng.sample(account_ids, 2)
        transfer(
            source=accounts[src],
            destination=accounts[dst],
            amount_u=rng.randint(1, 1000),
            type="bench",
            reference=f"bench-{worker}-{done}",
            actor=SystemActor("bench"),
        )
        done += 1
    connection.close()
    out.put(done)


def run_ledger(clients: int, seconds: float, account_ids: list[int]) -> float:
    out: mp.Queue = mp.Queue()
    start_at = time.time() + 2.0
    procs = [mp.Process(target=ledger_worker, args=(w, account_ids, seconds, start_at, out)) for w in range(clients)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def run_pgbench(clients: int, seconds: int) -> float:
    psql(f"DROP DATABASE IF EXISTS {PGBENCH_DB}")
    psql(f"CREATE DATABASE {PGBENCH_DB}")
    subprocess.run(
        ["pgbench", "-q", "-i", "-s", "10", "-h", "127.0.0.1", "-U", "postgres", PGBENCH_DB],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [
            "pgbench",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            PGBENCH_DB,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    if not match:
        raise SystemExit(f"could not read pgbench's tps from:\n{result.stdout}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args()

    print(f"preparing {args.accounts} funded accounts ...", flush=True)
    ids = prepare_ledger(args.accounts)
    from django.db import connection

    connection.close()
    ledger_tps = run_ledger(args.clients, args.seconds, ids)
    setup_django()
    from ledger.reconciliation import ledger_breaches

    breaches = ledger_breaches()
    pgbench_tps = run_pgbench(args.clients, args.seconds)
    print(f"clients:                      {args.clients}")
    print(f"ledger transfers/s (service): {ledger_tps:,.0f}")
    print(f"pgbench TPC-B tps (floor):    {pgbench_tps:,.0f}")
    print(f"ratio ledger / TPC-B:         {ledger_tps / pgbench_tps:.2f}  (goal >= 0.5)")
    print(f"ledger invariants after run:  {'OK' if not breaches else f'{len(breaches)} BREACHES'}")
    write_figures(
        "ledger",
        [
            Figure(
                f"ledger transfers/s (service), {args.clients} clients",
                round(ledger_tps, 1),
                "transfers/s",
                f"pgbench TPC-B {pgbench_tps:,.0f} tps",
                round(ledger_tps / pgbench_tps, 3),
                ">= 0.5 of the floor",
                ledger_tps / pgbench_tps >= 0.5,
            ),
            Figure(
                "ledger invariants broken after the transfers", len(breaches), "breaches", goal="0", met=not breaches
            ),
        ],
    )
    connection.close()
    psql(f"DROP DATABASE IF EXISTS {LEDGER_DB}")
    psql(f"DROP DATABASE IF EXISTS {PGBENCH_DB}")
    if breaches:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
