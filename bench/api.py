#!/usr/bin/env python
"""Benchmark: the players' API under load (wrk), beside the /health floor and pgbench's TPC-B, in one run.

    .venv/bin/python bench/api.py [--seconds 10] [--connections 16] [--workers 2] [--threads 4] [--players 2000]

In its own database (`bench_api`, or $BENCH_DB; dropped and re-created, real migrations) it opens today's
round (or the next one that can be opened) through `rounds.services.round_open_at_reference`, creates `--players`
players, credits each through `ledger.services.transfer` and gives each a knox API token. Then it starts
gunicorn as production runs it (`bin/backoffice web`, config/gunicorn.conf.py, the `prod_local` settings:
DEBUG off, persistent database connections, the JSON access log, logged in as the application role that
setup_db_roles sets up) with `--workers` x `--threads`, and drives
each path with wrk for `--seconds` at `--connections`, rotating through the players' tokens:

- `GET /health` (one `SELECT 1`: the floor of a request through Django),
- `GET /v1/rounds/current` (public), `GET /v1/wallet` (token auth),
- `POST /v1/rounds/{code}/bets` (token auth, a fresh Idempotency-Key per request; one bet per player).

After stopping the server it runs pgbench's TPC-B at `--pgbench-clients` for the same time, checks every
ledger invariant, prints per path throughput, p50, p99, the ratio to the floor and whether the goal is met,
and writes the figures to artifacts/bench/api.json. Goals (issue 22, ratios in the same run): reads >= 0.6 of
/health's throughput with p99 <= 1.5x /health's; bets >= 0.25 of TPC-B and >= 0.5 of /health, p99 <= 2x /health's. Installs wrk with apt-get when it is missing and
this runs as root. Redis: $REDIS_URL, default db 13. The server's other knobs come from the environment as in
production (e.g. WEB_MAX_REQUESTS, default 50000: each worker is recycled after that many requests). Stops the
server it started.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from string import Template
from typing import Any

from _common import Figure, pgbench_tps, psql, write_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = os.environ.get("BENCH_DB", "bench_api")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
# The goals of issue 22, as ratios to floors measured in the same run (a machine's speed cancels out):
READ_SHARE_GOAL = 0.6  # reads: at least this share of the /health floor's throughput
READ_P99_FACTOR = 1.5  # reads: p99 at most this many times /health's
BET_SHARE_GOAL = 0.25  # bets: at least this share of pgbench TPC-B at --pgbench-clients
BET_HEALTH_SHARE_GOAL = 0.5  # bets: and at least this share of /health's throughput
BET_P99_FACTOR = 2.0  # bets: p99 at most this many times /health's
FUNDING_STAKES = 1000  # each player is credited this many minimum stakes

# One wrk script per path. The players' tokens are read from a file; thread k of n uses tokens k, k+n, k+2n, ...
# so that until the file is exhausted no two requests carry the same player (one bet per player per round).
# `done` prints one parseable line with the totals of every thread and the latency percentiles.
WRK_SCRIPT = Template(r"""
local TOKENS, METHOD, PATH, EXPECTED, BET = "$tokens", "$method", "$path", $expected, $bet
local NTHREADS, RUN, STAKE = $nthreads, "$run", $stake
local tokens = {}
if TOKENS ~= "" then
  for line in io.lines(TOKENS) do tokens[#tokens + 1] = line end
end
local threads = {}
local created = 0

function setup(thread)
  created = created + 1
  thread:set("id", created)
  table.insert(threads, thread)
end

function init(args)
  cursor, sent, good, unexpected, unexpected_status = id - 1, 0, 0, 0, 0
end

function request()
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Token " .. tokens[(cursor % #tokens) + 1]
    cursor = cursor + NTHREADS
  end
  sent = sent + 1
  local body = nil
  if BET then
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = string.format("%s-%d-%d", RUN, id, sent)
    local side = (sent % 2 == 0) and "UP" or "DOWN"
    body = string.format('{"side":"%s","stake_u":%d}', side, STAKE + sent)
  end
  return wrk.format(METHOD, PATH, headers, body)
end

function response(status, headers, body)
  if status == EXPECTED then
    good = good + 1
  else
    unexpected = unexpected + 1
    if unexpected_status == 0 then unexpected_status = status end
  end
end

function done(summary, latency, requests)
  local good, unexpected, unexpected_status = 0, 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("good")
    unexpected = unexpected + thread:get("unexpected")
    if thread:get("unexpected_status") ~= 0 then unexpected_status = thread:get("unexpected_status") end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"good":%d,'
      .. '"unexpected":%d,"unexpected_status":%d,"socket_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    latency.max, good, unexpected, unexpected_status, errors.connect + errors.read + errors.write, errors.timeout))
end
""")


@dataclass(frozen=True)
class Path_:
    label: str
    method: str
    path: str
    expected: int
    tokens: bool = False
    bet: bool = False


@dataclass(frozen=True)
class Result:
    label: str
    rate: float  # expected answers per second
    good: int  # expected answers
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    unexpected: int
    unexpected_status: int
    socket_errors: int
    timeouts: int


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed: `sudo apt-get install -y wrk` (Debian's package), then run again")
    print("wrk is not installed: apt-get install -y -qq wrk", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get installed wrk but it is not on PATH")
    return found


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    import django

    django.setup()


def open_round(*, seconds_needed: float) -> Any:
    """Open, through the service, the first round whose lock is far enough ahead to take bets during the run."""
    from ops.actors import SystemActor
    from rounds import clock
    from rounds.domain import calendar
    from rounds.selectors import NEW_YORK
    from rounds.services import round_open_at_reference

    now = clock.now()
    day = now.astimezone(NEW_YORK).date()
    for _ in range(10):
        session = calendar.next_session(on_or_after=day)
        times = calendar.session_times(day=session)
        if times.lock_utc > now:
            break
        day = session + timedelta(days=1)
    if (times.lock_utc - now).total_seconds() < seconds_needed:
        raise SystemExit(
            f"round {times.code} locks at {times.lock_utc:%H:%M:%S}Z, too soon for this run, and the next one can be "
            f"opened only after its close plus the settle buffer ({times.settle_after_utc:%H:%M:%S}Z): run again then"
        )
    return round_open_at_reference(
        code=times.code,
        reference=Decimal(100),
        source="bench (no oracle here)",
        acting_user=SystemActor("bench"),
        reason="bench/api.py: a fixed reference close (no oracle here)",
    )


def prepare(players: int, *, seconds_needed: float) -> tuple[Any, list[str]]:
    """Fresh database, migrations, an open round, funded players and their tokens."""
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    setup_django()
    from django.core.management import call_command
    from knox.models import AuthToken

    from accounts.models import User
    from ledger.services import external_account, transfer, user_account
    from ops.actors import SystemActor
    from ops.db_roles import setup_db_roles

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    setup_db_roles()  # the release step: the server logs in as the application role, as production does
    round_obj = open_round(seconds_needed=seconds_needed)
    psp = external_account(provider="bench", currency=round_obj.currency)
    users = User.objects.bulk_create(User(email=f"bench-api-{i}@example.com") for i in range(players))
    tokens = []
    for i, user in enumerate(users):
        transfer(
            source=psp,
            destination=user_account(user=user, currency=round_obj.currency),
            amount_u=FUNDING_STAKES * round_obj.min_stake_u,
            type="deposit",
            reference=f"bench-fund:{i}",
            actor=SystemActor("bench"),
        )
        tokens.append(AuthToken.objects.create(user=user)[1])
    print(
        f"prepared {players:,} funded players with tokens and round {round_obj.code} (locks "
        f"{round_obj.lock_at:%Y-%m-%d %H:%M:%S}Z) in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return round_obj, tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_database_url() -> str:
    """The bench database as the application role (DB_APP_ROLE, default backoffice_app; trust auth on 127.0.0.1)."""
    scheme, _, rest = PG.partition("://")
    server = rest.rpartition("@")[2]
    role = os.environ.get("DB_APP_ROLE", "backoffice_app")
    password = os.environ.get("DB_APP_PASSWORD", "")
    return f"{scheme}://{role}{':' + password if password else ''}@{server}/{DB}"


def start_gunicorn(*, port: int, workers: int, threads: int, work: Path, log: Path) -> subprocess.Popen[bytes]:
    """`bin/backoffice web` with the production settings of this machine (prod_local: no real PSP, no TLS)."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DJANGO_SETTINGS_MODULE": "config.settings.prod_local",
        # The application role (setup_db_roles, in prepare): the deploy checks refuse a superuser.
        "DATABASE_URL": app_database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        # Required by the production settings; nothing here calls a PSP (a closed port if something did).
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "ADYEN_API_BASE": "http://127.0.0.1:9",
        "STRIPE_API_KEY": f"sk_live_bench{secrets.token_hex(12)}",
        "STRIPE_WEBHOOK_SECRET": f"whsec_{secrets.token_hex(16)}",
        "ADYEN_API_KEY": f"AQE{secrets.token_hex(16)}",
        "ADYEN_HMAC_KEY": secrets.token_hex(32).upper(),
        "ADYEN_MERCHANT_ACCOUNT": "BenchMerchant",
        "ADYEN_LIVE_ENDPOINT_PREFIX": "bench-prefix",  # the entrypoint's deploy checks ask for one (adyen_live)
        "ADYEN_BALANCE_ACCOUNT_ID": "BA_BENCH",
        "CUSTODY_WEBHOOK_KEY": secrets.token_hex(32),
        "DEPOSIT_RETURN_URL": f"http://127.0.0.1:{port}/deposits/return",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "STATIC_ROOT": str(work / "static"),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "WEB_THREADS": str(threads),
        "LOG_LEVEL": "WARNING",
    }
    (work / "static").mkdir(exist_ok=True)
    handle = log.open("wb")
    return subprocess.Popen(  # noqa: S603
        [str(ROOT / "bin" / "backoffice"), "web"], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
    )


def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited ({server.returncode}); its log:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer /health within 60 s; its log:\n{log.read_text()[-4000:]}")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def worker_pids(log: Path) -> set[int]:
    """The gunicorn worker processes that answered during the run, from the JSON access log."""
    return {json.loads(line)["pid"] for line in log.read_text().splitlines() if '"gunicorn.access"' in line}


def run_wrk(
    wrk: str, base: str, target: Path_, *, seconds: int, connections: int, threads: int, work: Path, **values: Any
) -> Result:
    script = work / f"{target.label.replace(' ', '_').replace('/', '_')}.lua"
    script.write_text(
        WRK_SCRIPT.substitute(
            method=target.method,
            path=target.path,
            expected=target.expected,
            bet="true" if target.bet else "false",
            tokens=str(work / "tokens.txt") if target.tokens else "",
            nthreads=threads,
            **values,
        )
    )
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s"]
    completed = subprocess.run(  # noqa: S603
        [*command, "-s", str(script), f"{base}{target.path}"], check=True, capture_output=True, text=True
    )
    line = next((x for x in completed.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no BENCH line:\n{completed.stdout}\n{completed.stderr}")
    data = json.loads(line.removeprefix("BENCH "))
    return Result(
        label=target.label,
        rate=data["good"] / (data["duration_us"] / 1e6),
        good=data["good"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        requests=data["requests"],
        unexpected=data["unexpected"],
        unexpected_status=data["unexpected_status"],
        socket_errors=data["socket_errors"],
        timeouts=data["timeouts"],
    )


@dataclass(frozen=True)
class Floor:
    value: float  # /health's req/s, or TPC-B's tps
    name: str
    share: float  # the throughput wanted, as a share of this floor
    short: str = "/health"  # its name in the printed table


@dataclass(frozen=True)
class Goal:
    floors: tuple[Floor, ...]  # the throughput must reach its share of every one
    health_p99_ms: float  # /health's p99 in the same run
    p99_factor: float  # the p99 wanted: at most this many times /health's

    @property
    def p99_ms(self) -> float:
        return self.health_p99_ms * self.p99_factor

    def met(self, result: Result) -> tuple[bool, bool]:
        """(throughput met, p99 met); an answer other than the expected one, or a socket error, misses both."""
        clean = result.unexpected == 0 and result.socket_errors == 0 and result.timeouts == 0
        rate = all(result.rate / floor.value >= floor.share for floor in self.floors)
        return clean and rate, clean and result.p99_ms <= self.p99_ms

    def text(self) -> str:
        shares = " and ".join(f">= {floor.share} of {floor.short}" for floor in self.floors)
        return f"{shares}, p99 <= {self.p99_factor}x /health's"


def goal_for(label: str, health: Result, tpcb: float) -> Goal:
    on_health = Floor(health.rate, f"GET /health {health.rate:,.0f} req/s", READ_SHARE_GOAL)
    if label.startswith("POST"):
        floors = (
            Floor(tpcb, f"pgbench TPC-B {tpcb:,.0f} tps", BET_SHARE_GOAL, "TPC-B"),
            Floor(health.rate, f"GET /health {health.rate:,.0f} req/s", BET_HEALTH_SHARE_GOAL),
        )
        return Goal(floors, health.p99_ms, BET_P99_FACTOR)
    return Goal((on_health,), health.p99_ms, READ_P99_FACTOR)


def figures(results: dict[str, Result], tpcb: float, clients: int, connections: int, breaches: int) -> list[Figure]:
    health = results["GET /health"]
    rows = [
        Figure("GET /health throughput (the floor)", round(health.rate, 1), "req/s"),
        Figure("GET /health p50", round(health.p50_ms, 1), "ms"),
        Figure("GET /health p99", round(health.p99_ms, 1), "ms"),
        Figure(f"pgbench TPC-B, {clients} clients (the bets' floor)", round(tpcb, 1), "tps"),
    ]
    for label, result in results.items():
        if label == "GET /health":
            continue
        goal = goal_for(label, health, tpcb)
        unit = "bets/s" if label.startswith("POST") else "req/s"
        clean = result.unexpected == 0 and result.socket_errors == 0 and result.timeouts == 0
        for floor in goal.floors:
            rows.append(
                Figure(
                    f"{label} throughput",
                    round(result.rate, 1),
                    unit,
                    floor.name,
                    round(result.rate / floor.value, 3),
                    f">= {floor.share} of the floor",
                    clean and result.rate / floor.value >= floor.share,
                )
            )
        health_p50, health_p99 = f"GET /health p50 {health.p50_ms:.1f} ms", f"GET /health p99 {health.p99_ms:.1f} ms"
        rows += [
            Figure(f"{label} p50", round(result.p50_ms, 1), "ms", health_p50, round(result.p50_ms / health.p50_ms, 1)),
            Figure(
                f"{label} p99, {connections} connections",
                round(result.p99_ms, 1),
                "ms",
                health_p99,
                round(result.p99_ms / health.p99_ms, 2),
                f"<= {goal.p99_factor}x the floor",
                goal.met(result)[1],
            ),
        ]
    rows.append(Figure("ledger invariants broken after the bets", breaches, "breaches", goal="0", met=breaches == 0))
    return rows


def print_table(results: dict[str, Result], tpcb: float, args: argparse.Namespace, load: float) -> None:
    health = results["GET /health"]
    print(
        f"\ngunicorn {args.workers} workers x {args.threads} threads (prod_local settings), wrk {args.wrk_threads} "
        f"threads x {args.connections} connections, {args.seconds} s per path, {args.players:,} players, "
        f"{os.cpu_count()} CPUs (shared; load average {load:.1f} when the server started)"
    )
    header = f"{'path':<30} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'/health':>8} {'TPC-B':>7}  goal"
    print(header)
    print("-" * (len(header) + 42))
    for label, r in results.items():
        to_health = f"{r.rate / health.rate:8.3f}"
        if label == "GET /health":
            text, verdict, to_tpcb = "(the floor)", "", ""
        else:
            goal = goal_for(label, health, tpcb)
            text = goal.text()
            verdict = "MET" if all(goal.met(r)) else "MISSED"
            to_tpcb = f"{r.rate / tpcb:.2f}" if label.startswith("POST") else ""
        print(
            f"{label:<30} {r.rate:8.1f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.max_ms:8.1f} {to_health} {to_tpcb:>7}  "
            f"{text:<38} {verdict}".rstrip()
        )
    print(f"{f'pgbench TPC-B, {args.pgbench_clients} clients':<30} {tpcb:8.1f}  tps (the bets' floor)")
    for r in results.values():
        if r.unexpected or r.socket_errors or r.timeouts:
            print(
                f"WARNING {r.label}: {r.unexpected} of {r.requests} answers not the expected status (first: "
                f"{r.unexpected_status}), {r.socket_errors} socket errors, {r.timeouts} timeouts; they are not "
                "counted in the rate"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="per path (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--players", type=int, default=2000, help="funded players with tokens (default 2000)")
    parser.add_argument("--pgbench-clients", type=int, default=4, help="pgbench TPC-B clients (default 4)")
    parser.add_argument("--output", type=Path, default=None, help="figures file (default artifacts/bench/api.json)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    wrk = ensure_wrk()
    paths = 4
    round_obj, tokens = prepare(args.players, seconds_needed=paths * (args.seconds + 5) + 120)
    from django.db import connections

    connections.close_all()
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    (work / "tokens.txt").write_text("\n".join(tokens) + "\n")
    logs = ROOT / ".run" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "api-gunicorn.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    targets = [
        Path_("GET /health", "GET", "/health", 200),
        Path_("GET /v1/rounds/current", "GET", "/v1/rounds/current", 200),
        Path_("GET /v1/wallet", "GET", "/v1/wallet", 200, tokens=True),
        Path_(f"POST /v1/rounds/{round_obj.code}/bets", "POST", f"/v1/rounds/{round_obj.code}/bets", 201, True, True),
    ]
    run = secrets.token_hex(4)
    results: dict[str, Result] = {}
    load = os.getloadavg()[0]
    server = start_gunicorn(port=port, workers=args.workers, threads=args.threads, work=work, log=log)
    try:
        wait_ready(base, server, log)
        # Warm every worker (imports, first connections) before measuring; the warm-up places no bet.
        options = {"connections": args.connections, "threads": args.wrk_threads, "work": work, "run": run}
        for target in targets[:3]:
            run_wrk(wrk, base, target, seconds=2, stake=round_obj.min_stake_u, **options)
        for target in targets:
            print(f"wrk: {target.label} for {args.seconds} s ...", flush=True)
            results[target.label] = run_wrk(
                wrk, base, target, seconds=args.seconds, stake=round_obj.min_stake_u, **options
            )
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    print(f"pgbench TPC-B at {args.pgbench_clients} clients for {args.seconds} s ...", flush=True)
    tpcb = pgbench_tps(args.pgbench_clients, args.seconds, f"{DB}_pgbench")

    from ledger.reconciliation import ledger_breaches
    from rounds.models import Bet

    breaches = ledger_breaches()
    bets = Bet.objects.filter(round=round_obj).count()
    bet_result = results[targets[-1].label]
    print_table(results, tpcb, args, load)
    print(
        f"bets in the database: {bets:,} (wrk counted {bet_result.good:,} answers 201, the rest were in flight at "
        f"the end); ledger invariants after the run: {'; '.join(map(str, breaches)) if breaches else 'all hold'}"
    )
    max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "50000"))  # config/gunicorn.conf.py's default
    recycling = f"recycled after {max_requests} requests each, with jitter" if max_requests else "never recycled"
    print(
        f"gunicorn worker processes that answered: {len(worker_pids(log))} for {args.workers} workers "
        f"(WEB_MAX_REQUESTS={max_requests}: {recycling})"
    )
    # Requests in flight when wrk stops are still served but not counted: at most one per connection.
    if not bet_result.good <= bets <= bet_result.good + args.connections:
        print(f"WARNING: {bets:,} bets stored for {bet_result.good:,} answers 201 ({args.connections} connections)")
    if bet_result.unexpected and bets >= args.players:
        print(f"every player has bet (one bet per player per round): raise --players above {args.players:,}")
    path = write_figures(
        "api", figures(results, tpcb, args.pgbench_clients, args.connections, len(breaches)), args.output
    )
    print(f"figures: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    connections.close_all()
    if not args.keep:
        psql(f"DROP DATABASE IF EXISTS {DB}")
    return 1 if breaches else 0


if __name__ == "__main__":
    raise SystemExit(main())
