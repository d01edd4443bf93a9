"""Benchmark: confirmed deposits per second, from the first signed webhook POST to the last credit.

    .venv/bin/python bench/webhooks.py [--count 300] [--concurrency 16]

Starts, on 127.0.0.1, a gunicorn server (test settings, PostgreSQL) and a real Celery worker on
Redis, POSTs `--count` signed custody deposits over HTTP from `--concurrency` threads, and waits
until every credit is visible in the ledger. In the same run it measures a floor: the same number
of bare `ledger.services.transfer()` credits from the same number of threads, and prints the ratio.
Uses its own database (`bo_webhooks_bench`, created and migrated if missing) and Redis db 13 unless
BENCH_DB (a database name on 127.0.0.1, for several checkouts sharing one server; it wins over
DATABASE_URL), DATABASE_URL or REDIS_URL say otherwise. Stops the processes it started.

    BENCH_DB=bench_webhooks_<you> REDIS_URL=redis://127.0.0.1:6379/<n> .venv/bin/python bench/webhooks.py
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import Figure, write_figures

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bo_webhooks_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


def _environment() -> dict[str, str]:
    if os.environ.get("BENCH_DB"):
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{os.environ['BENCH_DB']}"
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    return dict(os.environ)


def _ensure_database(url: str) -> None:
    """Create the bench database if it does not exist (PostgreSQL, trust auth on 127.0.0.1)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} did not come up")


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _players(n: int) -> list[Any]:
    from accounts.models import User

    tag = uuid.uuid4().hex[:8]
    return [User.objects.create_user(email=f"bench-{tag}-{i}@example.com") for i in range(n)]


def _post_all(url: str, deliveries: list[Any], concurrency: int) -> tuple[float, list[float], list[int]]:
    """POST every delivery; return the first send time and each one's send time and status."""
    import requests

    local = threading.local()
    sent_at = [0.0] * len(deliveries)
    statuses = [0] * len(deliveries)

    def send(index: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        delivery = deliveries[index]
        sent_at[index] = time.time()
        statuses[index] = session.post(url, data=delivery.body, headers=delivery.headers, timeout=60).status_code

    started = time.time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(send, range(len(deliveries))))
    return started, sent_at, statuses


def _wait_credits(prefix: str, count: int, timeout: float) -> float:
    from ledger.models import Journal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Journal.objects.filter(reference__startswith=prefix).count() >= count:
            return time.time()
        time.sleep(0.05)
    done = Journal.objects.filter(reference__startswith=prefix).count()
    raise SystemExit(f"only {done}/{count} deposits credited after {timeout:.0f} s")


def _floor(players: list[Any], count: int, concurrency: int, currency: str) -> float:
    """Rate of bare transfer() credits (psp -> player available), same count and threads."""
    from django.db import connection

    from ledger.services import external_account, transfer, user_account
    from ops.actors import SystemActor

    tag = uuid.uuid4().hex[:8]
    source = external_account(provider="bench-floor", currency=currency)
    accounts = [user_account(user=p, currency=currency) for p in players]

    def credit(index: int) -> None:
        try:
            transfer(
                source=source,
                destination=accounts[index % len(accounts)],
                amount_u=1_000_000 + index,
                type="deposit",
                reference=f"bench-floor:{tag}:{index}",
                actor=SystemActor("bench"),
            )
        finally:
            if index % concurrency == concurrency - 1:
                connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(credit, range(count)))
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="signed deposits to send (default 300)")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (default 16)")
    parser.add_argument("--players", type=int, default=50, help="distinct players credited (default 50)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--celery-concurrency", type=int, default=4, help="Celery worker concurrency (default 4)")
    parser.add_argument(
        "--celery-pool",
        default="prefork",
        choices=["prefork", "threads"],
        help="Celery pool (default prefork: processes, no shared GIL)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="give up waiting for credits after (s)")
    args = parser.parse_args(argv)

    env = _environment()
    _ensure_database(env["DATABASE_URL"])
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from config.celery_app import app

    app.control.purge()

    from webhooks.stub import custody_request

    currency = "USDC"
    players = _players(min(args.players, args.count))
    run = uuid.uuid4().hex[:10]
    prefix = f"deposit:custody:bench-{run}-"
    deliveries = [
        custody_request(
            {
                "reference": f"bench-{run}-{i}",
                "user_id": str(players[i % len(players)].public_id),
                "amount_u": 1_000_000 + i,
                "currency": currency,
            },
            settings.CUSTODY_WEBHOOK_KEY,
        )
        for i in range(args.count)
    ]

    logs = ROOT / ".run" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    web = _start(
        [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-k",
            "gthread",
            "-w",
            str(args.web_workers),
            "--threads",
            "8",
            "--backlog",
            "1024",
            "--log-level",
            "warning",
        ],
        env,
        logs / "gunicorn.log",
    )
    worker = _start(
        [
            str(BIN / "celery"),
            "-A",
            "config.celery_app",
            "worker",
            "-P",
            args.celery_pool,
            "-c",
            str(args.celery_concurrency),
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"bench-{run}@%h",
        ],
        env,
        logs / "celery.log",
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/health")
        time.sleep(1.0)  # let the worker connect to the broker
        url = f"http://127.0.0.1:{port}/webhooks/deposits"
        started, sent_at, statuses = _post_all(url, deliveries, args.concurrency)
        acked = time.time()
        bad = [s for s in statuses if s != 202]
        if bad:
            raise SystemExit(f"{len(bad)} deliveries were not accepted: {sorted(set(bad))}")
        finished = _wait_credits(prefix, args.count, args.timeout)
    finally:
        _stop(web)
        _stop(worker)

    from ledger.models import Journal

    created = {
        j.reference.removeprefix(prefix): j.created_at.timestamp()
        for j in Journal.objects.filter(reference__startswith=prefix).only("reference", "created_at")
    }
    latencies = sorted(created[str(i)] - sent_at[i] for i in range(args.count))
    elapsed = finished - started
    rate = args.count / elapsed
    floor = _floor(players, args.count, args.concurrency, currency)

    print(f"signed custody deposits: {args.count}, client threads: {args.concurrency}, players: {len(players)}")
    print(f"  POSTs acknowledged (202) in {acked - started:.2f} s  -> {args.count / (acked - started):.1f} acks/s")
    print(f"  received -> credited:  {elapsed:.2f} s  -> {rate:.1f} confirmed deposits/s")
    print(
        f"  per-deposit latency (POST sent -> credit committed): p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    print(f"floor: bare transfer() credits, same count and threads: {floor:.1f} credits/s")
    print(f"ratio: webhook path is {floor / rate:.1f}x slower than the floor ({rate / floor:.2f} of it)")
    floor_name = f"bare transfer() credits {floor:,.1f}/s"
    p95_ms = round(latencies[int(len(latencies) * 0.95) - 1] * 1000)
    write_figures(
        "webhooks",
        [
            Figure(
                "signed custody deposits confirmed per s",
                round(rate, 1),
                "deposits/s",
                floor_name,
                round(rate / floor, 3),
                ">= 0.5 of the floor",
                rate / floor >= 0.5,
            ),
            Figure(
                "signed custody deposits acknowledged (202) per s", round(args.count / (acked - started), 1), "acks/s"
            ),
            Figure("deposit latency p50 (POST -> credit committed)", round(statistics.median(latencies) * 1000), "ms"),
            Figure("deposit latency p95", p95_ms, "ms", goal="< 500 ms", met=p95_ms < 500),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
