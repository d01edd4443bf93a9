#!/usr/bin/env python
"""Benchmark: the rush before the lock. Every player bets in the last minute; beat's own tick locks on time.

    .venv/bin/python bench/rush.py [--players 10000] [--window 60] [--after 5] [--clients 64] [--give-up 30]
                                   [--workers 2] [--threads 4] [--settle-buffer 5] [--proofs 200] [--keep]

In its own database (`bench_rush`, or $BENCH_DB; dropped and re-created, migrated by the release step
`bin/backoffice migrate` as the owner, the processes then connecting as the application role) it creates
`--players` players plus the late ones (below), credits each with one `ledger.services.transfer_batch` per
thousand and gives each a knox token (knox's own digests, inserted in bulk). Then it starts the processes as
production runs them, with the `prod_local` settings: `bin/backoffice web` (gunicorn, `--workers` x `--threads`),
`bin/backoffice worker rounds` and `bin/backoffice beat` on Redis ($REDIS_URL, default db 13; the four Celery
queues there are emptied before and after, as nothing here consumes the three others).

The round. A round locks at its session's close minus 1 s (15:59:59 ET) and beat ticks on every minute
(`rounds-tick`, crontab `*` in config/settings/base.py), so the tick at the close locks it. The bench needs a
lock about a minute ahead, whenever it runs, so it opens the upcoming session's round through the service the
tick itself calls (`rounds.services.round_open`, a fixed reference close) with that session's times moved, in
this process only, while it opens: the close on the first minute boundary that leaves time for the processes
and the rush, the lock 1 s before it, the settle buffer `--settle-buffer` s instead of 5 min. The times are in
the round's row and its commit like any round's; beat, the worker and the web server run unpatched on the real
clock (the demo clock exists only in development, rounds.E001). Beat starts only once the round is open, so
its tick never opens one of its own.

The rush. `--players` bets, one per player, are due at evenly spaced instants over the last `--window` seconds
before the lock, then `--after` seconds more of bets at the same rate from other funded players: those must all
be refused as `rounds/locked`. Open loop: a dispatcher releases each bet at its instant to `--clients` threads,
each with one keep-alive connection (http.client), and a bet's latency runs from its instant to its answer, so
a server that falls behind is not hidden by the client waiting for it (the client's own lag is printed apart);
a bet still unsent `--give-up` s after its instant is dropped and counted, so the run ends in bounded time.
Before the rush, `GET /health` at the same rate for 5 s is the floor the latencies are compared with. A poller
reads the round's status every 10 ms to see when the lock commits.

Then it settles the round with `bin/backoffice manage settle_round --code C --result AUTO` (what beat runs,
from the oracle: two local price sources served by this script, ORACLE_SOURCES) once the settle buffer has
passed, fetches `--proofs` Merkle proofs of random accepted bets over `GET /v1/bets/{id}/proof` and checks each
from the bet the player placed, stops the processes, and checks:

- every 201 has exactly one Bet row (its bet_id, player, side and stake) and exactly one debit of the stake on
  the player's account, every refusal neither, and each player's balance is funding - stake + payout;
- no bet placed at or after lock_at; every answer a 201 or a `rounds/locked` problem;
- every ledger invariant (`ledger.reconciliation.ledger_breaches`, the rounds' pools included) and the
  round's public verification (`rounds.selectors.round_verify`: commit, Merkle root, reveal, payouts).

It prints bets per second, p50 and p99, the lock's lateness (commit seen vs lock_at) and duration (the tick's
start to the commit), the refusals, the settlement, and writes artifacts/bench/rush.json. Goals: no bet lost or
double-posted, every refusal `rounds/locked`, the lock committed within 2 s of lock_at, bet p99 < 300 ms with
every bet sent, no invariant broken. Exits 1 when a bet is lost, double-posted or answered otherwise, an
invariant breaks, a proof fails or the round does not verify. Stops every process it started (their logs stay
in .run/bench/rush/); `--keep` keeps the database.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

from _common import Figure, psql, write_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = os.environ.get("BENCH_DB", "bench_rush")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
WORK = ROOT / ".run" / "bench" / "rush"  # the processes' logs, static files and beat's schedule (one run's)
APP_ROLE = "backoffice_app"  # the processes' role (DB_APP_ROLE's default), granted by the release step
QUEUES = ("webhooks", "payouts", "rounds", "housekeeping")  # config/settings/base.py, CELERY_QUEUE_NAMES
FUNDING_STAKES = 100  # each player is credited this many minimum stakes
FUND_BATCH = 1000  # transfers per transfer_batch
REFERENCE = Decimal(100)  # the round's reference close, fixed at open
CLOSE = Decimal("101.5")  # the close both price sources answer: UP wins
FLOOR_SECONDS = 5  # GET /health at the bets' rate before the rush
LATENESS_GOAL_S = 2.0
P99_GOAL_MS = 300.0
POLL_S = 0.01


# --- Setup --------------------------------------------------------------------------------------


def setup_django() -> None:
    """This process: the test settings as the database's owner (the data is written as the drill writes it)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    import django

    django.setup()


def process_env(*, work: Path, port: int, price_base: str) -> dict[str, str]:
    """The processes' environment: prod_local settings, the application role, the bench's Redis and oracle."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "PYTHON": sys.executable,
        "DJANGO_SETTINGS_MODULE": "config.settings.prod_local",
        "DATABASE_URL": f"{PG}/{DB}".replace("postgres://postgres@", f"postgres://{APP_ROLE}@", 1),
        "DATABASE_OWNER_URL": f"{PG}/{DB}",
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
        "ADYEN_LIVE_ENDPOINT_PREFIX": "bench-prefix",
        "ADYEN_BALANCE_ACCOUNT_ID": "BA_BENCH",
        "CUSTODY_WEBHOOK_KEY": secrets.token_hex(32),
        "DEPOSIT_RETURN_URL": f"http://127.0.0.1:{port}/deposits/return",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "STATIC_ROOT": str(work / "static"),
        "CELERY_BEAT_SCHEDULE_FILE": str(work / "celerybeat-schedule"),
        "ORACLE_SOURCES": json.dumps(
            [
                {"name": "bench-a", "url": price_base + "/a/{date}", "field": "close"},
                {"name": "bench-b", "url": price_base + "/b/{date}", "field": "data.close"},
            ]
        ),
        "BIND": f"127.0.0.1:{port}",
        "LOG_LEVEL": "INFO",
    }


def release(env: dict[str, str]) -> None:
    """The release step as production runs it: migrations and the application role's grants, as the owner."""
    done = subprocess.run(  # noqa: S603
        [str(ROOT / "bin" / "backoffice"), "migrate"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"bin/backoffice migrate failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


@dataclass(frozen=True)
class Player:
    index: int
    pk: int
    public_id: str
    token: str


def players_create(count: int) -> list[Player]:
    """Create `count` players, each funded with FUNDING_STAKES minimum stakes and holding a knox token."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone
    from knox.models import AuthToken, get_digest_token
    from knox.settings import CONSTANTS, knox_settings

    from accounts.models import User
    from ledger.services import Transfer, external_account, transfer_batch, user_account
    from ops.actors import SystemActor

    users = User.objects.bulk_create(User(email=f"rush-{i}@example.com") for i in range(count))
    psp = external_account(provider="bench", currency=settings.ROUND_CURRENCY)
    amount = FUNDING_STAKES * settings.MIN_STAKE_U

    def open_accounts(chunk: list[Any]) -> list[Any]:
        try:
            return [user_account(user=user, currency=psp.currency) for user in chunk]
        finally:
            connection.close()

    # One `ledger_account_open` call per player: four connections at once.
    with ThreadPoolExecutor(max_workers=4) as pool:
        accounts = [
            a for chunk in pool.map(open_accounts, [users[i : i + 500] for i in range(0, count, 500)]) for a in chunk
        ]
    orders = [Transfer(psp, account, amount, "deposit", f"bench-fund:{i}") for i, account in enumerate(accounts)]
    for start in range(0, len(orders), FUND_BATCH):
        transfer_batch(transfers=orders[start : start + FUND_BATCH], actor=SystemActor("bench"))
    expiry = timezone.now() + knox_settings.TOKEN_TTL
    tokens, rows = [], []
    for user in users:
        digest, token = get_digest_token()
        tokens.append(token)
        rows.append(AuthToken(digest=digest, token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH], user=user, expiry=expiry))
    AuthToken.objects.bulk_create(rows, batch_size=2000)
    return [Player(i, u.pk, str(u.public_id), t) for i, (u, t) in enumerate(zip(users, tokens, strict=True))]


def upcoming_session(now: datetime) -> Any:
    """The times of the first session whose lock is still ahead (the round the tick would open next)."""
    from rounds.domain import calendar

    day = calendar.next_session(on_or_after=now.date() - timedelta(days=1))
    while calendar.session_times(day=day).lock_utc <= now:
        day = calendar.next_session(on_or_after=day + timedelta(days=1))
    return calendar.session_times(day=day)


def wait_for_final_reference(now: datetime) -> None:
    """Between a session's close and its settle buffer no round can open (ReferenceNotFinal): wait it out."""
    from rounds.domain import calendar

    session = upcoming_session(now)
    previous = calendar.session_times(day=calendar.previous_session(day=session.day))
    wait_s = (previous.settle_after_utc - now).total_seconds()
    if wait_s > 0:
        print(f"round {session.code}'s reference (the close of {previous.code}) is final in {wait_s:.0f} s: waiting")
        time.sleep(wait_s + 1)


@contextmanager
def session_moved(code: str, times: Any) -> Iterator[None]:
    """While opening, in this process only: session `code` has `times`; every other session keeps its own."""
    from rounds.domain import calendar

    original = calendar.session_times

    def moved(*, day: Any) -> Any:
        return times if calendar.code_for(day) == code else original(day=day)

    with mock.patch.object(calendar, "session_times", moved):
        yield


def round_open_moved(*, lead_s: float, window_s: float, settle_buffer_s: float) -> Any:
    """Open the upcoming session's round through `round_open`, its close on a minute boundary about a minute away.

    The close is the first minute boundary at least `lead_s` + `window_s` + 1 s away, so beat's tick at that
    boundary is the one that locks the round (as the tick at 16:00:00 ET locks a real round at 15:59:59).
    """
    from ops.actors import SystemActor
    from rounds.domain import calendar
    from rounds.services import round_open

    now = datetime.now(UTC)
    wait_for_final_reference(now)
    now = datetime.now(UTC)
    earliest = now + timedelta(seconds=lead_s + window_s + 1)
    close = earliest.replace(second=0, microsecond=0) + timedelta(minutes=1)
    session = upcoming_session(now)
    times = calendar.SessionTimes(
        code=session.code,
        day=session.day,
        open_utc=now.replace(microsecond=0),
        close_utc=close,
        lock_utc=close - calendar.LOCK_BEFORE_CLOSE,
        settle_after_utc=close + timedelta(seconds=settle_buffer_s),
        is_early_close=False,
    )
    with session_moved(session.code, times):
        round_obj, created = round_open(
            code=session.code,
            acting_user=SystemActor("bench"),
            reference_close=REFERENCE,
            reason="bench/rush.py: the session's times moved to lock a minute from now, on the bench's database",
        )
    if not created:
        raise SystemExit(f"round {session.code} was already open in {DB}")
    return round_obj


# --- The oracle's two sources -----------------------------------------------------------------------


def price_server(day: str) -> ThreadingHTTPServer:
    """Two price sources on 127.0.0.1 that answer the close of `day` only (a 404 for any other day)."""
    answers = {f"/a/{day}": {"close": str(CLOSE)}, f"/b/{day}": {"data": {"close": str(CLOSE)}}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = answers.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- Processes ------------------------------------------------------------------------------------


@dataclass
class Processes:
    """The processes this bench started, each in its own process group, and their logs."""

    work: Path
    env: dict[str, str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.work / f"{name}.log"

    def start(self, name: str, *args: str, **extra: str) -> None:
        handle = self.log(name).open("wb")
        self.running[name] = subprocess.Popen(  # noqa: S603
            [str(ROOT / "bin" / "backoffice"), *args],
            cwd=ROOT,
            env={**self.env, **extra},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_log(self, name: str, text: str, timeout: float = 90) -> None:
        """Wait until the process's log shows `text`; exit with its log if it ends or the time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(name).read_text(errors="replace"):
                return
            if self.running[name].poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"{name} did not log {text!r}; its log:\n{self.log(name).read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        """SIGTERM each process group this bench started, SIGKILL what is left after 30 s."""
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_ready(base: str, processes: Processes) -> None:
    import requests

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if processes.running["web"].poll() is not None:
            break
        try:
            if requests.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer /health/ready; its log:\n{processes.log('web').read_text()[-4000:]}")


def queues_clear(redis_url: str) -> None:
    """Delete the four Celery queues in the bench's Redis database (nothing consumes three of them here)."""
    import redis

    redis.Redis.from_url(redis_url).delete(*QUEUES)


# --- The client -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One request to send at wall time `at` (seconds since the epoch)."""

    index: int
    at: float
    method: str
    path: str
    token: str = ""
    body: dict[str, Any] | None = None
    key: str = ""


@dataclass
class Answer:
    shot: Shot
    sent: float  # 0: not sent (its instant had passed by more than the give-up time)
    done: float
    status: int  # 0: no HTTP answer
    problem: str = ""
    bet_id: str = ""
    error: str = ""

    @property
    def latency_ms(self) -> float:
        """From the instant the player sends (the schedule's) to the answer: the client's own wait counts too."""
        return (self.done - self.shot.at) * 1000

    @property
    def service_ms(self) -> float:
        """From the moment the request left to the answer."""
        return (self.done - self.sent) * 1000


class Client:
    """One keep-alive HTTP/1.1 connection (http.client: a fraction of `requests`' CPU per request)."""

    def __init__(self, base: str) -> None:
        self.host, self.port = base.removeprefix("http://").split(":")
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        # A kept-alive connection the server closed meanwhile is opened again, once. A bet is safe to send
        # twice: its Idempotency-Key makes the second a replay of the first's answer.
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def fire(client: Client, shot: Shot) -> Answer:
    """Send one request; return what came back and when."""
    headers = {"Authorization": f"Token {shot.token}"} if shot.token else {}
    body = None
    if shot.body is not None:
        body = json.dumps(shot.body).encode()
        headers |= {"Content-Type": "application/json", "Idempotency-Key": shot.key}
    sent = time.time()
    try:
        status, content = client.request(shot.method, shot.path, body, headers)
    except (OSError, http.client.HTTPException) as exc:
        client.close()
        return Answer(shot, sent, time.time(), 0, error=type(exc).__name__)
    answer = Answer(shot, sent, time.time(), status)
    if shot.body is not None:
        try:
            data = json.loads(content)
        except ValueError:
            data = {}
        answer.bet_id = str(data.get("bet_id") or "")
        answer.problem = str(data.get("type") or "") if status >= 400 else ""
    return answer


def run_shots(base: str, shots: list[Shot], clients: int, give_up_s: float) -> list[Answer]:
    """Open loop: release each shot at its instant to `clients` threads; return every answer.

    A shot still waiting for a free client `give_up_s` after its instant is not sent (the server has fallen
    that far behind): it is answered with status 0 and sent 0, so the run ends in bounded time.
    """
    pending: queue.Queue[Shot | None] = queue.Queue()
    answers: list[Answer] = []
    lock = threading.Lock()

    def work() -> None:
        client = Client(base)
        while (shot := pending.get()) is not None:
            if time.time() - shot.at > give_up_s:
                answer = Answer(shot, 0.0, 0.0, 0, error="not sent")
            else:
                answer = fire(client, shot)
            with lock:
                answers.append(answer)
        client.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for shot in sorted(shots, key=lambda s: s.at):
        delay = shot.at - time.time()
        if delay > 0:
            time.sleep(delay)
        pending.put(shot)
    for _ in threads:
        pending.put(None)
    for thread in threads:
        thread.join()
    return sorted(answers, key=lambda a: a.shot.index)


def bet_shots(
    players: list[Player], *, code: str, lock_at: float, window_s: float, bets: int, min_stake_u: int, run: str
) -> list[Shot]:
    """`bets` bets evenly over the `window_s` before `lock_at`, then the other players' at the same rate after it."""
    step = window_s / bets
    shots = []
    for player in players:
        at = lock_at - window_s + (player.index + 0.5) * step
        body = {"side": "UP" if player.index % 2 else "DOWN", "stake_u": min_stake_u * (1 + player.index % 5)}
        shots.append(
            Shot(player.index, at, "POST", f"/v1/rounds/{code}/bets", player.token, body, f"rush-{run}-{player.index}")
        )
    return shots


class LockWatch(threading.Thread):
    """Read the round's status every POLL_S from `start`: when did the lock's commit become visible?"""

    def __init__(self, round_pk: int, start: float, deadline: float) -> None:
        super().__init__(daemon=True)
        self.round_pk, self.start_at, self.deadline = round_pk, start, deadline
        self.seen: float | None = None  # first read that found the round no longer OPEN
        self.last_open: float | None = None  # the read before it, which still found it OPEN

    def run(self) -> None:
        from django.db import connection

        from rounds.models import Round

        time.sleep(max(0.0, self.start_at - time.time()))
        try:
            while time.time() < self.deadline:
                status = Round.objects.filter(pk=self.round_pk).values_list("status", flat=True).get()
                if status != Round.Status.OPEN:
                    self.seen = time.time()
                    return
                self.last_open = time.time()
                time.sleep(POLL_S)
        finally:
            connection.close()


# --- Figures ----------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class Rush:
    """What the rush's answers say."""

    window: list[Answer]
    after: list[Answer]
    lock_at: float

    @property
    def accepted(self) -> list[Answer]:
        return [a for a in self.window + self.after if a.status == 201]

    def refused(self, problem: str) -> list[Answer]:
        return [a for a in self.window + self.after if a.status == 409 and a.problem == problem]

    @property
    def unsent(self) -> list[Answer]:
        return [a for a in self.window + self.after if not a.sent]

    def unexpected(self, problem: str) -> list[Answer]:
        """Sent requests answered neither 201 nor with the problem `problem` (no answer at all included)."""
        return [
            a
            for a in self.window + self.after
            if a.sent and a.status != 201 and not (a.status == 409 and a.problem == problem)
        ]

    def bets_per_s(self) -> float:
        """Accepted bets over the span from the first bet sent to the last 201 received."""
        accepted = self.accepted
        if not accepted:
            return 0.0
        return len(accepted) / (max(a.done for a in accepted) - min(a.sent for a in self.window if a.sent))

    def sent_in_window(self) -> list[Answer]:
        return [a for a in self.window if a.sent]


# --- Checks -----------------------------------------------------------------------------------------


@dataclass
class Ledgered:
    """Every answer held against the database: bets, debits of the players' accounts and balances."""

    problems: list[str]
    bets_in_round: int
    bets_after_lock: int


def check_answers(round_obj: Any, players: list[Player], answers: list[Answer], funding_u: int) -> Ledgered:
    """Each 201: one Bet row (its id, side, stake) and one debit of its stake; each refusal: neither."""
    from ledger.models import Account, Entry
    from rounds.models import Bet

    by_pk = {p.pk: p for p in players}
    bets = {
        row[0]: row
        for row in Bet.objects.filter(round=round_obj).values_list("player_id", "bet_id", "side", "stake_u", "payout_u")
    }
    debits: dict[int, list[int]] = defaultdict(list)
    balances: dict[int, int] = {}
    accounts = Account.objects.filter(owner_id__in=by_pk, kind=Account.Kind.USER_AVAILABLE)
    for owner, balance in accounts.values_list("owner_id", "balance_u"):
        balances[owner] = balance
    entries = Entry.objects.filter(account__in=accounts, amount_u__lt=0).values_list("account__owner_id", "amount_u")
    for owner, amount in entries:
        debits[owner].append(-amount)
    problems: list[str] = []
    for answer in answers:
        player = players[answer.shot.index]
        row, paid = bets.get(player.pk), debits.get(player.pk, [])
        if answer.status == 201:
            body = answer.shot.body or {}
            want = (player.pk, answer.bet_id, body["side"], body["stake_u"])
            if row is None or (row[0], str(row[1]), row[2], row[3]) != want:
                problems.append(f"player {player.index}: 201 {answer.bet_id} but the Bet row is {row}")
            if paid != [body["stake_u"]]:
                problems.append(f"player {player.index}: 201 but the account's debits are {paid}")
            expected = funding_u - body["stake_u"] + ((row[4] or 0) if row else 0)
        else:
            if row is not None or paid:
                problems.append(f"player {player.index}: answered {answer.status} but bet {row}, debits {paid}")
            expected = funding_u
        if balances.get(player.pk) != expected:
            problems.append(f"player {player.index}: balance {balances.get(player.pk)}, expected {expected}")
    answered = {players[a.shot.index].pk for a in answers if a.status == 201}
    for pk in set(bets) - answered:
        problems.append(f"player {by_pk[pk].index if pk in by_pk else pk}: a Bet row without a 201")
    after_lock = Bet.objects.filter(round=round_obj, placed_at__gte=round_obj.lock_at).count()
    return Ledgered(problems, len(bets), after_lock)


def check_proofs(base: str, round_obj: Any, players: list[Player], accepted: list[Answer], count: int) -> list[str]:
    """Fetch proofs of random accepted bets as their players would, and check each from the bet placed."""
    import requests

    from rounds.domain.merkle import bet_leaf, verify_proof

    failures = []
    with requests.Session() as session:
        for answer in random.sample(accepted, min(count, len(accepted))):
            player = players[answer.shot.index]
            response = session.get(
                f"{base}/v1/bets/{answer.bet_id}/proof", headers={"Authorization": f"Token {player.token}"}, timeout=30
            )
            if response.status_code != 200:
                failures.append(f"bet {answer.bet_id}: proof answered {response.status_code}")
                continue
            data = response.json()
            record, body = data["bet"], answer.shot.body or {}
            mine = (record["bet_id"], record["player_id"], record["side"], record["stake_u"]) == (
                answer.bet_id,
                player.public_id,
                body["side"],
                body["stake_u"],
            )
            leaf = bet_leaf(**record)
            steps = [(step["sibling"], step["position"]) for step in data["proof"]]
            if not (
                mine
                and leaf.hex() == data["leaf"]
                and data["root"] == round_obj.merkle_root
                and verify_proof(leaf=leaf, proof=steps, root=round_obj.merkle_root)
            ):
                failures.append(f"bet {answer.bet_id}: the proof does not reach the published root from the bet placed")
    return failures


# --- The run ----------------------------------------------------------------------------------------


def settle(env: dict[str, str], code: str) -> float:
    """`settle_round --code C --result AUTO` (what beat runs) through bin/backoffice; return its seconds."""
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603
        [str(ROOT / "bin" / "backoffice"), "manage", "settle_round", "--code", code, "--result", "AUTO"],
        cwd=ROOT,
        env={**env, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"settle_round failed:\n{done.stdout}{done.stderr}")
    return seconds


def lock_tick(code: str, timeout: float = 60) -> Any:
    """The rounds worker's run of the beat tick that locked the round (recorded when the whole tick ends)."""
    from ops.models import WorkerRun

    deadline = time.monotonic() + timeout
    while True:
        run = WorkerRun.objects.filter(worker="rounds", detail__locked__contains=[code]).order_by("started_at").first()
        if run is not None or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def timed(label: str, action: Any, *args: Any, **kwargs: Any) -> Any:
    started = time.monotonic()
    result = action(*args, **kwargs)
    print(f"{label}: {time.monotonic() - started:.1f} s", flush=True)
    return result


def start_stack(args: argparse.Namespace, processes: Processes, base: str, day: str) -> Any:
    """Web and the rounds worker, then the round (so no tick opens one of its own), then beat; return the round."""
    processes.start("web", "web", LOG_LEVEL="WARNING", WEB_CONCURRENCY=str(args.workers), WEB_THREADS=str(args.threads))
    processes.start("worker", "worker", "rounds")
    wait_ready(base, processes)
    processes.wait_log("worker", "ready.")
    round_obj = round_open_moved(lead_s=25, window_s=args.window, settle_buffer_s=args.settle_buffer)
    if round_obj.code != day.replace("-", ""):
        raise SystemExit(f"the upcoming session changed while preparing ({day} -> {round_obj.code}): run again")
    processes.start("beat", "beat")
    processes.wait_log("beat", "beat: Starting")
    return round_obj


def measure_floor(base: str, rate: float, args: argparse.Namespace) -> list[Answer]:
    """GET /health at the bets' rate for FLOOR_SECONDS: the latency of a request through Django here, now."""
    at = time.time() + 0.5
    shots = [Shot(i, at + i / rate, "GET", "/health") for i in range(int(rate * FLOOR_SECONDS))]
    return run_shots(base, shots, args.clients, args.give_up)


def rush_run(args: argparse.Namespace, base: str, round_obj: Any, players: list[Player]) -> tuple[Rush, LockWatch]:
    """The bets, spread over the window before the lock and a little past it, with the lock watched."""
    lock_at = round_obj.lock_at.timestamp()
    if time.time() > lock_at - args.window:
        raise SystemExit("the rush's window began before the processes were up: the machine is too slow for this lead")
    shots = bet_shots(
        players,
        code=round_obj.code,
        lock_at=lock_at,
        window_s=args.window,
        bets=args.players,
        min_stake_u=round_obj.min_stake_u,
        run=secrets.token_hex(4),
    )
    watch = LockWatch(round_obj.pk, start=lock_at - 0.5, deadline=lock_at + 120)
    watch.start()
    cpu = time.process_time()
    print(f"rush: {args.players:,} bets over {args.window:.0f} s, then {len(shots) - args.players} after the lock ...")
    answers = run_shots(base, shots, args.clients, args.give_up)
    span = time.time() - (lock_at - args.window)
    print(
        f"the client's own CPU from the window's start to the last answer: {time.process_time() - cpu:.1f} s "
        f"in {span:.0f} s"
    )
    watch.join()
    return Rush(
        [a for a in answers if a.shot.at < lock_at], [a for a in answers if a.shot.at >= lock_at], lock_at
    ), watch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=10_000, help="bets in the window, one per player")
    parser.add_argument("--window", type=float, default=60.0, help="seconds before the lock the bets spread over")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of bets after the lock (all refused)")
    parser.add_argument("--clients", type=int, default=64, help="client threads (keep-alive connections)")
    parser.add_argument("--give-up", type=float, default=30.0, help="a bet not sent this long after its instant is not")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--settle-buffer", type=float, default=5.0, help="seconds from close to settlement")
    parser.add_argument("--proofs", type=int, default=200, help="Merkle proofs fetched and checked")
    parser.add_argument("--output", type=Path, default=None, help="figures file (default artifacts/bench/rush.json)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    started = time.monotonic()
    rate = args.players / args.window
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "static").mkdir(parents=True)
    from api import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    setup_django()
    from django.conf import settings
    from django.db import connections

    from ledger.reconciliation import ledger_breaches
    from rounds.errors import RoundLocked
    from rounds.selectors import round_verify

    # The oracle's sources are in the processes' environment, so the round's day is chosen before they start:
    # the upcoming session's (checked again when the round opens).
    day = upcoming_session(datetime.now(UTC)).day.isoformat()
    prices = price_server(day)
    env = process_env(work=WORK, port=port, price_base=f"http://127.0.0.1:{prices.server_port}")
    processes = Processes(WORK, env)
    try:
        timed("release step (bin/backoffice migrate as the owner)", release, env)
        count = args.players + math.ceil(rate * args.after)
        players = timed(f"{count:,} players funded, with tokens", players_create, count)
        funding_u = FUNDING_STAKES * settings.MIN_STAKE_U
        connections.close_all()
        queues_clear(redis_url)
        round_obj = start_stack(args, processes, base, day)
        print(
            f"round {round_obj.code} open; locks at {round_obj.lock_at:%H:%M:%S}Z "
            f"(close {round_obj.close_at:%H:%M:%S}Z, settle after {round_obj.settle_after:%H:%M:%S}Z); "
            f"web, worker and beat up after {time.monotonic() - started:.0f} s",
            flush=True,
        )
        floor = measure_floor(base, rate, args)
        load_before = os.getloadavg()
        rush, watch = rush_run(args, base, round_obj, players)
        load_during = os.getloadavg()
        tick = lock_tick(round_obj.code)
        time.sleep(max(0.0, round_obj.settle_after.timestamp() - time.time() + 0.2))
        settle_s = settle(env, round_obj.code)
        round_obj.refresh_from_db()
        proof_failures = check_proofs(base, round_obj, players, rush.accepted, args.proofs)
    finally:
        processes.stop()
        prices.shutdown()
        queues_clear(redis_url)
    ledgered = check_answers(round_obj, players, rush.window + rush.after, funding_u)
    breaches = ledger_breaches()
    verify = round_verify(round_obj=round_obj)
    report(
        args,
        rush=rush,
        floor=floor,
        round_obj=round_obj,
        watch=watch,
        tick=tick,
        settle_s=settle_s,
        ledgered=ledgered,
        breaches=breaches,
        verify=verify,
        proof_failures=proof_failures,
        locked=RoundLocked.code,
        loads=(load_before, load_during),
        total_s=time.monotonic() - started,
    )
    connections.close_all()
    if not args.keep:
        psql(f"DROP DATABASE IF EXISTS {DB}")
    correct = not (
        ledgered.problems
        or ledgered.bets_after_lock
        or rush.unexpected(RoundLocked.code)
        or breaches
        or proof_failures
        or not all(line.ok for line in verify)
    )
    return 0 if correct else 1


def report(args: argparse.Namespace, **run: Any) -> None:
    """Print the run and write its figures (artifacts/bench/rush.json)."""
    rush: Rush = run["rush"]
    round_obj, watch, tick, locked = run["round_obj"], run["watch"], run["tick"], run["locked"]
    lock_at = rush.lock_at
    health = [a.latency_ms for a in run["floor"] if a.status == 200]
    sent = rush.sent_in_window()
    latencies = [a.latency_ms for a in sent]
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    s50, s99 = percentile([a.service_ms for a in sent], 0.50), percentile([a.service_ms for a in sent], 0.99)
    h50, h99 = percentile(health, 0.50), percentile(health, 0.99)
    lag = percentile([(a.sent - a.shot.at) * 1000 for a in sent], 0.99)
    p99_met = p99 < P99_GOAL_MS and not rush.unsent
    offered = args.players / args.window
    per_s = rush.bets_per_s()
    # Not seen at all: the watch's whole span, a MISSED goal (and the line below says so).
    lateness = (watch.seen if watch.seen else watch.deadline) - lock_at
    tick_start = tick.started_at.timestamp() - lock_at if tick else math.nan
    tick_s = (tick.finished_at - tick.started_at).total_seconds() if tick else math.nan
    lock_s = (watch.seen - tick.started_at.timestamp()) if tick and watch.seen else math.nan
    refused_window = [a for a in rush.window if a.status == 409 and a.problem == locked]
    refused_after = [a for a in rush.after if a.status == 409 and a.problem == locked]
    unexpected = rush.unexpected(locked)
    ledgered: Ledgered = run["ledgered"]
    breaches, verify, proof_failures = run["breaches"], run["verify"], run["proof_failures"]
    lost = len(ledgered.problems) + ledgered.bets_after_lock
    verified = all(line.ok for line in verify)
    (b1, b5, _), (d1, d5, _) = run["loads"]

    def verdict(met: bool) -> str:
        return "MET" if met else "MISSED"

    print(
        f"\ngunicorn {args.workers} workers x {args.threads} threads, worker rounds and beat (prod_local, application "
        f"role), {args.clients} client threads, {os.cpu_count()} CPUs (shared; load average {b1:.1f}/{b5:.1f} before "
        f"the rush, {d1:.1f}/{d5:.1f} after it); the whole run {run['total_s']:.0f} s"
    )
    print(
        f"bets offered          {offered:8.1f} /s  ({args.players:,} over the last {args.window:.0f} s before the lock)"
    )
    print(
        f"bets accepted         {per_s:8.1f} /s  {len(rush.accepted):,} answers 201, ratio to the offered rate "
        f"{per_s / offered:.3f}"
    )
    print(
        f"bet latency p50       {p50:8.1f} ms  from each bet's instant to its answer (GET /health at the same rate, "
        f"the floor: {h50:.1f} ms; from the request leaving: {s50:.1f} ms)"
    )
    print(
        f"bet latency p99       {p99:8.1f} ms  (floor {h99:.1f} ms; from the request leaving {s99:.1f} ms; max "
        f"{max(latencies, default=0):.0f} ms; client lag p99 {lag:.1f} ms)  goal < {P99_GOAL_MS:.0f} ms: "
        f"{verdict(p99_met)}"
    )
    if rush.unsent:
        print(
            f"NOT SENT              {len(rush.unsent):,} bets still waiting for a client {args.give_up:.0f} s after "
            "their instant (the server fell that far behind): not sent, counted as missing the p99 goal"
        )
    print(
        f"lock                  tick started {tick_start:+.3f} s after lock_at, commit "
        + (f"seen {lateness:+.3f} s after it" if watch.seen else f"NOT seen within {lateness:.0f} s")
        + f" (the read before: {(watch.last_open or lock_at) - lock_at:+.3f} s; 1 s of it by design: the lock is the "
        f"close - 1 s, the tick runs at the close)  goal within {LATENESS_GOAL_S:.0f} s: "
        f"{verdict(lateness <= LATENESS_GOAL_S)}"
    )
    print(
        f"round_lock            {lock_s:8.3f} s  tick start -> commit seen, {ledgered.bets_in_round:,} bets in the "
        f"Merkle root (the whole tick, started -> finished: {tick_s:.3f} s; after the lock it looks for rounds to "
        "settle and to open)"
    )
    print(
        f"refusals              {len(refused_window)} in the window (answered after lock_at), {len(refused_after)} of "
        f"{len(rush.after)} after it, all {locked}: {verdict(not unexpected)}"
        + (
            f"; unexpected: {Counter((a.status, a.problem or a.error) for a in unexpected).most_common(5)}"
            if unexpected
            else ""
        )
    )
    print(
        f"ledgered              {verdict(lost == 0)}: every 201 one Bet row and one debit, every refusal none, every "
        f"balance funding - stake + payout; {ledgered.bets_after_lock} bets placed at or after lock_at"
    )
    for problem in ledgered.problems[:10]:
        print(f"  {problem}")
    print(
        f"settlement            {run['settle_s']:.1f} s for settle_round (in its transaction "
        f"{round_obj.settlement_duration_s or 0:.2f} s): {round_obj.status} {round_obj.result} at close "
        f"{round_obj.close_price}, pool {round_obj.total_pool_u:,} u, fee {round_obj.fee_u:,}, winners "
        f"{round_obj.winners:,}"
    )
    print(f"invariants            {'all hold' if not breaches else '; '.join(map(str, breaches))}")
    print(
        f"round verification    {verdict(verified)}: "
        + ", ".join(f"{line.part} {'ok' if line.ok else line.detail}" for line in verify)
    )
    print(
        f"Merkle proofs         {min(args.proofs, len(rush.accepted)) - len(proof_failures)} of "
        f"{min(args.proofs, len(rush.accepted))} checked from the bet placed: {verdict(not proof_failures)}"
    )
    for failure in proof_failures[:5]:
        print(f"  {failure}")
    rows = [
        Figure("bets offered in the last minute", round(offered, 1), "bets/s"),
        Figure(
            "bets accepted",
            round(per_s, 1),
            "bets/s",
            f"offered {offered:.1f} bets/s",
            round(per_s / offered, 3),
        ),
        Figure("bet p50", round(p50, 1), "ms", f"GET /health p50 {h50:.1f} ms", round(p50 / h50, 1) if h50 else None),
        Figure(
            "bet p99",
            round(p99, 1),
            "ms",
            f"GET /health p99 {h99:.1f} ms",
            round(p99 / h99, 1) if h99 else None,
            f"< {P99_GOAL_MS:.0f} ms, every bet sent",
            p99_met,
        ),
        Figure(
            f"bets not sent: still waiting for a client {args.give_up:.0f} s after their instant",
            len(rush.unsent),
            "bets",
        ),
        Figure(
            "lock committed after lock_at (beat's tick)",
            round(lateness, 3),
            "s",
            goal=f"<= {LATENESS_GOAL_S:.0f} s",
            met=lateness <= LATENESS_GOAL_S,
        ),
        Figure(f"round_lock of {ledgered.bets_in_round:,} bets (tick start -> commit)", round(lock_s, 3), "s"),
        Figure(
            "refusals after the lock not rounds/locked",
            len(unexpected),
            "answers",
            goal="0",
            met=not unexpected,
        ),
        Figure("bets lost, double-posted or half-written", lost, "bets", goal="0", met=lost == 0),
        Figure(
            f"settlement of {ledgered.bets_in_round:,} bets (settle_round)",
            round(round_obj.settlement_duration_s or 0, 2),
            "s",
        ),
        Figure("ledger invariants broken after settlement", len(breaches), "breaches", goal="0", met=not breaches),
        Figure(
            f"Merkle proofs failing (of {min(args.proofs, len(rush.accepted))} fetched)",
            len(proof_failures),
            "proofs",
            goal="0",
            met=not proof_failures,
        ),
        Figure(
            "round verification parts failing (commit, root, reveal, payouts)",
            sum(not line.ok for line in verify),
            "parts",
            goal="0",
            met=verified,
        ),
    ]
    path = write_figures("rush", rows, args.output)
    print(f"figures: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    raise SystemExit(main())
