#!/usr/bin/env python
"""Benchmark: what one web process sustains (gunicorn, one sync worker, the project's gunicorn config).

    .venv/bin/python bench/web.py [--seconds 10] [--clients 4] [--web-workers 1]

Starts `bin/backoffice web` (test settings, PostgreSQL) on 127.0.0.1, then for each endpoint sends requests
from `--clients` threads for `--seconds` and prints requests per second and latency percentiles:
`GET /api/health` (no database), `GET /v1/withdrawals` (token auth + one query: a player's list),
`GET /health/ready` (database and broker round trips). Uses DATABASE_URL (default bo_web_bench, migrated if
needed) and REDIS_URL (default redis db 13). Stops the server it started.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bo_web_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"


def prepare() -> str:
    """Create and migrate the database if needed; return a player's API token."""
    dbname = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    exists = subprocess.run(
        [
            "psql",
            f"{base}/postgres",
            "-tAc",  # noqa: S607
            f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(["createdb", f"--maintenance-db={base}/postgres", dbname], check=True)  # noqa: S607
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()
    from knox.models import AuthToken

    from accounts.models import User

    user, _ = User.objects.get_or_create(email="web-bench@example.com")
    return AuthToken.objects.create(user=user)[1]


def hammer(url: str, headers: dict[str, str], seconds: float, clients: int) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            response = session.get(url, headers=headers, timeout=30)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if response.status_code != 200:
                    errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), latencies, errors[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=18870)
    args = parser.parse_args()
    token = prepare()
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "WEB_CONCURRENCY": str(args.web_workers),
        "BIND": f"127.0.0.1:{args.port}",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [str(ROOT / "bin" / "backoffice"), "web", "--access-logfile", "/dev/null"],  # noqa: S603
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(120):
            try:
                if requests.get(f"{base}/api/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            raise SystemExit("the web server did not start")
        print(
            f"one gunicorn server, {args.web_workers} sync worker(s), {args.clients} client threads, "
            f"{args.seconds:.0f} s per endpoint, {os.cpu_count()} CPUs (shared)"
        )
        for path, headers in (
            ("/api/health", {}),
            ("/v1/withdrawals", {"Authorization": f"Token {token}"}),
            ("/health/ready", {}),
        ):
            count, latencies, errors = hammer(f"{base}{path}", headers, args.seconds, args.clients)
            q = statistics.quantiles(latencies, n=100)
            print(
                f"GET {path:<18} {count / args.seconds:7.1f} req/s  p50 {q[49] * 1000:6.1f} ms  "
                f"p95 {q[94] * 1000:6.1f} ms  errors {errors}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
