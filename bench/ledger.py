#!/usr/bin/env python
"""Benchmark: ledger transfers per second through the service layer, beside pgbench's TPC-B.

All three run against the same PostgreSQL server with the same number of concurrent clients in the
same run, and the ratios to TPC-B are printed:

- single: each client calls `ledger.services.transfer()` in a loop: one posting per transaction (on
  PostgreSQL one call of the `ledger_post` function: lock two accounts, insert a journal and two
  entries, move two balances; the deferred zero-sum trigger fires at commit). Goal: >= 0.8 x TPC-B.
- batch: each client calls `ledger.services.transfer_batch()` with `--batch` independent random
  transfers per transaction. Goal: >= 2 x TPC-B.

    .venv/bin/python bench/ledger.py [--clients 4] [--seconds 15] [--accounts 1000] [--batch 100] [--rounds 1]

Each round also calls `ledger_post` straight from pgbench (a C client, no Python; reported, not a goal):
the server's own ceiling for single transfers, so the gap between it and `transfer()` is the client's share.

`--batch 0` skips the batch run. The databases are created for the run (named after its process id,
so two runs never share one, or `$BENCH_DB` and `$BENCH_DB_pgbench` when set) and dropped at the end.

`--profile N` measures the client's own cost instead: N single transfers in one thread under cProfile
(no pgbench, no other client), printing wall and CPU microseconds per transfer (the CPU time is the
Python spent per transfer: the process waits idle for the server) and the functions that cost most.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import Figure, pgbench_init, pgbench_run, psql, write_figures  # noqa: E402

PG = "postgres://postgres@127.0.0.1:5432"
SINGLE_GOAL = 0.8
BATCH_GOAL = 2.0


def setup_django(database: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"{PG}/{database}"
    import django

    django.setup()


def prepare_ledger(database: str, accounts: int) -> list[int]:
    """Create a fresh database, migrate, and fund `accounts` player accounts."""
    psql(f"DROP DATABASE IF EXISTS {database}")
    psql(f"CREATE DATABASE {database}")
    setup_django(database)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from ledger.services import Transfer, external_account, transfer_batch, user_account
    from ops.actors import SystemActor

    psp = external_account(provider="bench", currency="USDC")
    users = User.objects.bulk_create(User(email=f"bench{i}@example.com") for i in range(accounts))
    funded = [user_account(user=user, currency="USDC") for user in users]
    transfer_batch(
        transfers=[
            Transfer(source=psp, destination=account, amount_u=10**12, type="deposit", reference=f"fund-{i}")
            for i, account in enumerate(funded)
        ],
        actor=SystemActor("bench"),
    )
    return [account.pk for account in funded]


def ledger_worker(
    mode: str, batch: int, worker: int, account_ids: list[int], seconds: float, start_at: float, out: mp.Queue
) -> None:
    """Transfer 1 to 1,000 units between random accounts until the deadline; report the transfers done."""
    import random

    from django.db import connection

    from ledger.models import Account
    from ledger.services import Transfer, transfer, transfer_batch
    from ops.actors import SystemActor

    actor = SystemActor("bench")
    accounts = {a.pk: a for a in Account.objects.filter(pk__in=account_ids)}
    rng = random.Random(worker)
    connection.ensure_connection()
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    done = 0
    while time.time() < deadline:
        if mode == "single":
            src, dst = rng.sample(account_ids, 2)
            transfer(
                source=accounts[src],
                destination=accounts[dst],
                amount_u=rng.randint(1, 1000),
                type="bench",
                reference=f"{mode}-{worker}-{done}",
                actor=actor,
            )
            done += 1
            continue
        orders = []
        for i in range(batch):
            src, dst = rng.sample(account_ids, 2)
            orders.append(
                Transfer(
                    source=accounts[src],
                    destination=accounts[dst],
                    amount_u=rng.randint(1, 1000),
                    type="bench",
                    reference=f"{mode}-{worker}-{done + i}",
                )
            )
        transfer_batch(transfers=orders, actor=actor)
        done += batch
    connection.close()
    out.put(done)


LEDGER_POST_SCRIPT = """\\set a random(:lo, :hi)
\\set b :lo + (:a - :lo + random(1, :hi - :lo)) % (:hi - :lo + 1)
SELECT status FROM ledger_post('bench', 'pgbench-' || gen_random_uuid(), 'f', '{}'::jsonb, NULL, 'bench', NULL,
  ARRAY[:a, :b]::bigint[], ARRAY['USDC', 'USDC']::varchar[], ARRAY[-1, 1]::bigint[]);
"""


def run_ledger_post_from_pgbench(database: str, clients: int, seconds: int, account_ids: list[int]) -> float | None:
    """Call `ledger_post` from pgbench (a C client: no Python) for `seconds`; return its calls/s.

    The server's own ceiling for single transfers: what `transfer()` reaches beside it is the client's share.
    The accounts are drawn between the lowest and highest funded id (None when they are not contiguous).
    """
    lo, hi = min(account_ids), max(account_ids)
    if hi - lo + 1 != len(account_ids):
        return None
    script = Path(f"/tmp/{database}-ledger-post.sql")
    script.write_text(LEDGER_POST_SCRIPT)
    try:
        result = subprocess.run(
            ["pgbench", "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-f", str(script)]
            + ["-D", f"lo={lo}", "-D", f"hi={hi}", "-h", "127.0.0.1", "-U", "postgres", database],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        script.unlink(missing_ok=True)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    return float(match.group(1)) if match else None


def run_ledger(mode: str, batch: int, clients: int, seconds: float, account_ids: list[int]) -> float:
    out: mp.Queue = mp.Queue()
    start_at = time.time() + 2.0
    procs = [
        mp.Process(target=ledger_worker, args=(mode, batch, w, account_ids, seconds, start_at, out))
        for w in range(clients)
    ]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def profile_single(account_ids: list[int], transfers: int) -> None:
    """Run `transfers` single transfers in this thread under cProfile; print the cost per transfer."""
    import random

    from ledger.models import Account
    from ledger.services import transfer
    from ops.actors import SystemActor

    actor = SystemActor("bench")
    accounts = {a.pk: a for a in Account.objects.filter(pk__in=account_ids)}
    rng = random.Random(0)
    orders = [(*rng.sample(account_ids, 2), rng.randint(1, 1000)) for _ in range(transfers)]

    def run(label: str) -> None:
        for number, (src, dst, amount_u) in enumerate(orders):
            transfer(
                source=accounts[src],
                destination=accounts[dst],
                amount_u=amount_u,
                type="bench",
                reference=f"profile-{label}-{number}",
                actor=actor,
            )

    run("warm")  # connection, plan caches and preparation, outside the figures
    wall, cpu = time.perf_counter(), time.process_time()
    run("timed")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    profiler = cProfile.Profile(time.process_time)  # CPU time: waiting for the server is not the client's cost
    profiler.runcall(run, "profiled")
    print(f"single transfers in one thread:   {transfers}")
    print(f"  wall per transfer:              {wall / transfers * 1e6:,.0f} us")
    print(f"  client CPU per transfer:        {cpu / transfers * 1e6:,.0f} us  (Python's own cost)")
    print("  under cProfile (CPU time, its overhead included), by own time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(
        int(os.environ.get("PROFILE_ROWS", "18"))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="transfers per batch (0: no batch run)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of TPC-B, single and batch")
    parser.add_argument("--profile", type=int, default=0, help="profile N single transfers in one thread instead")
    args = parser.parse_args()
    ledger_db = os.environ.get("BENCH_DB") or f"bench_ledger_{os.getpid()}"
    pgbench_db = f"{ledger_db}_pgbench" if os.environ.get("BENCH_DB") else f"bench_pgbench_{os.getpid()}"
    if args.profile:
        try:
            profile_single(prepare_ledger(ledger_db, args.accounts), args.profile)
        finally:
            from django.db import connection

            connection.close()
            psql(f"DROP DATABASE IF EXISTS {ledger_db} WITH (FORCE)")
        return

    print(f"preparing {args.accounts} funded accounts and pgbench's tables ...", flush=True)
    rounds = []
    try:
        ids = prepare_ledger(ledger_db, args.accounts)
        from django.db import connection

        connection.close()
        pgbench_init(pgbench_db)
        for _ in range(args.rounds):  # interleaved, so a change in the machine's load hits all three alike
            pgbench_tps = pgbench_run(pgbench_db, args.clients, args.seconds)
            single_tps = run_ledger("single", 0, args.clients, args.seconds, ids)
            server_tps = run_ledger_post_from_pgbench(ledger_db, args.clients, args.seconds, ids)
            if server_tps is not None:
                print(
                    f"  ledger_post from pgbench (no Python): {server_tps:,.0f}/s ({server_tps / pgbench_tps:.2f} of"
                    f" TPC-B); single transfers reach {single_tps / server_tps:.2f} of it",
                    flush=True,
                )
            batch_tps = run_ledger("batch", args.batch, args.clients, args.seconds, ids) if args.batch else 0.0
            rounds.append((pgbench_tps, single_tps, batch_tps))
            print(
                f"  round {len(rounds)}: TPC-B {pgbench_tps:,.0f} tps, single {single_tps:,.0f}/s "
                f"({single_tps / pgbench_tps:.2f}), batch {batch_tps:,.0f}/s ({batch_tps / pgbench_tps:.2f})",
                flush=True,
            )
        from ledger.reconciliation import ledger_breaches

        breaches = ledger_breaches()
        connection.close()
    finally:
        psql(f"DROP DATABASE IF EXISTS {ledger_db} WITH (FORCE)")
        psql(f"DROP DATABASE IF EXISTS {pgbench_db} WITH (FORCE)")
    pgbench_tps, single_tps, batch_tps = (sum(column) / len(rounds) for column in zip(*rounds, strict=True))
    print(f"clients:                          {args.clients}  (means of {len(rounds)} interleaved rounds)")
    print(f"pgbench TPC-B tps (floor):        {pgbench_tps:,.0f}")
    print(f"ledger transfers/s (single):      {single_tps:,.0f}")
    print(f"  ratio single / TPC-B:           {single_tps / pgbench_tps:.2f}  (goal >= {SINGLE_GOAL})")
    if args.batch:
        print(f"ledger transfers/s (batch of {args.batch}): {batch_tps:,.0f}")
        print(f"  ratio batch / TPC-B:            {batch_tps / pgbench_tps:.2f}  (goal >= {BATCH_GOAL})")
    print(f"ledger invariants after run:      {'OK' if not breaches else f'{len(breaches)} BREACHES'}")
    floor = f"pgbench TPC-B {pgbench_tps:,.0f} tps, {args.clients} clients"
    figures = [
        Figure(
            f"ledger transfers/s (single), {args.clients} clients",
            round(single_tps, 1),
            "transfers/s",
            floor,
            round(single_tps / pgbench_tps, 3),
            f">= {SINGLE_GOAL} of the floor",
            single_tps / pgbench_tps >= SINGLE_GOAL,
        )
    ]
    if args.batch:
        figures.append(
            Figure(
                f"ledger transfers/s (batch of {args.batch}), {args.clients} clients",
                round(batch_tps, 1),
                "transfers/s",
                floor,
                round(batch_tps / pgbench_tps, 3),
                f">= {BATCH_GOAL} of the floor",
                batch_tps / pgbench_tps >= BATCH_GOAL,
            )
        )
    figures.append(
        Figure("ledger invariants broken after the transfers", len(breaches), "breaches", goal="0", met=not breaches)
    )
    write_figures(f"ledger-{args.clients}", figures)
    if breaches:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
