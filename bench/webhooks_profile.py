"""Profile: where one signed custody deposit's time goes, in process (no gunicorn, no Celery).

    BENCH_DB=bench_webhooks_profile .venv/bin/python bench/webhooks_profile.py [--count 200] [--top 25]

Posts `--count` signed custody deposits through the Django test client to `/webhooks/deposits` (the
view, verification, the store and the in-request credit, exactly as a request runs them), counts the
SQL statements of each (`CaptureQueriesContext`, printed by kind for one deposit) and profiles the
lot with cProfile (the `--top` functions by cumulative time). In its own database ($BENCH_DB, default
`bench_webhooks_profile`, created and migrated if missing). A look inside, not a figure: the rate and
latency figures are bench/webhooks.py's.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup() -> None:
    database = os.environ.get("BENCH_DB", "bench_webhooks_profile")
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _kind(sql: str) -> str:
    """A statement's kind for the tally: its verb and the table or function it names."""
    words = sql.replace('"', "").split()
    verb = words[0].upper() if words else "?"
    for marker in ("FROM", "INTO", "UPDATE"):
        if marker in (w.upper() for w in words[1:]) or verb == "UPDATE":
            index = 0 if verb == "UPDATE" else [w.upper() for w in words].index(marker)
            target = words[index + 1] if index + 1 < len(words) else "?"
            return f"{verb} {target.split('(')[0]}"
    return verb


def _package(filename: str) -> str:
    """A profiled function's package: `django.db`, `psycopg`, an app of this project, `builtins`..."""
    if "site-packages/" in filename:
        parts = filename.split("site-packages/", 1)[1].split("/")
        return ".".join(parts[:2]) if parts[0] == "django" else parts[0]
    if filename.startswith(str(ROOT)):
        return Path(filename).relative_to(ROOT).parts[0]
    return "python" if "/lib/python" in filename else filename


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="deposits to post (default 200)")
    parser.add_argument(
        "--sort", default="cumulative", help="cProfile sort key (default cumulative; tottime for own time)"
    )
    parser.add_argument("--top", type=int, default=25, help="functions to print by cumulative time (default 25)")
    args = parser.parse_args(argv)
    _setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from webhooks.stub import custody_request

    tag = uuid.uuid4().hex[:8]
    players = [User.objects.create_user(email=f"profile-{tag}-{i}@example.com") for i in range(20)]
    deliveries = [
        custody_request(
            {
                "reference": f"profile-{tag}-{i}",
                "user_id": str(players[i % len(players)].public_id),
                "amount_u": 1_000_000 + i,
                "currency": "USDC",
            },
            settings.CUSTODY_WEBHOOK_KEY,
        )
        for i in range(2 * args.count + 1)
    ]
    client = Client()

    def post(index: int) -> None:
        delivery = deliveries[index]
        response = client.post(
            "/webhooks/deposits", delivery.body, content_type="application/json", headers=delivery.headers
        )
        if response.status_code != 202:
            raise SystemExit(f"deposit {index} answered {response.status_code}: {response.content[:200]!r}")

    with CaptureQueriesContext(connection) as queries:
        post(0)
    print(f"SQL statements for one deposit (store + in-request credit): {len(queries)}")
    for kind, n in Counter(_kind(q["sql"]) for q in queries.captured_queries).most_common():
        print(f"  {n:3d}  {kind}")
    started, cpu = time.perf_counter(), time.process_time()
    for index in range(args.count + 1, 2 * args.count + 1):
        post(index)
    bare_ms = (time.perf_counter() - started) / args.count * 1000
    cpu_ms = (time.process_time() - cpu) / args.count * 1000
    print(
        f"{args.count} deposits without the profiler: {bare_ms:.2f} ms each (one client, in process), "
        f"of which this process's CPU {cpu_ms:.2f} ms"
    )
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        profiler.enable()
        for index in range(1, args.count + 1):
            post(index)
        profiler.disable()
    elapsed = time.perf_counter() - started
    seconds: Counter[str] = Counter()
    for query in queries.captured_queries:
        seconds[_kind(query["sql"])] += float(query["time"])
    print(f"SQL time per deposit by statement (ms, mean of {args.count}; the database's time plus the round trip):")
    for kind, total in seconds.most_common():
        print(f"  {total / args.count * 1000:7.2f}  {kind}")
    print(f"  {sum(seconds.values()) / args.count * 1000:7.2f}  all statements")
    print(f"{args.count} deposits under the profiler: {elapsed / args.count * 1000:.2f} ms each")
    stats = pstats.Stats(profiler)
    own: Counter[str] = Counter()
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        own[_package(filename)] += tottime
    print("own time (tottime) by package, ms per deposit (under the profiler):")
    for package, total in own.most_common(15):
        print(f"  {total / args.count * 1000:7.2f}  {package}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
