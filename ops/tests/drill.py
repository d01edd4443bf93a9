"""The fault drill's harness: servers the drill owns, the back office's processes, and flows driven over HTTP.

Everything listens on 127.0.0.1 on free ports, in temporary directories; nothing touches the machine's own
PostgreSQL or Redis:
- `OwnPostgres`: a cluster of the drill's own (initdb + pg_ctl from /usr/lib/postgresql/<newest>/bin, trust
  auth); when the drill runs as root the cluster runs as the `postgres` system user (PostgreSQL refuses root);
- a redis-server of its own (`ops.tests.processes.OwnRedis`, no persistence: a restart loses the queues);
- the PSP stub (`python -m webhooks.stub`), whose `GET /_stub/call-stats` counts the HTTP calls per idempotency key;
- the back office as production runs it (`bin/backoffice web|worker|beat`, the `prod_local` settings): gunicorn,
  a payouts worker, a worker for the other queues, and two beats (one schedules, the other stands by).
`Drill.setup_database` is the one place the database is prepared (migrations as the release step runs them,
then the drill's data by ops/tests/drill_setup.py).

Flows (`BetFlow`, `DepositFlow`, `WithdrawalFlow`) each run in a thread: they send their request, retry it with
the SAME Idempotency-Key (or webhook reference) after a refusal that says "try again" (409 in progress, 5xx,
no connection), and are done when the database says so: a bet placed, a deposit credited, a withdrawal paid.
Each uses a fresh player, so the player's balance shows whether money moved exactly once. Every loop is
bounded in time.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
import requests

from .drill_setup import MAX_WAIT_S
from .processes import OwnRedis, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT_S = 10.0
RETRY_PAUSE_S = 0.3
# Answers after which the same request is sent again (same key): the server said "not now", or never answered.
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
BET_STAKE_U = 2_000_000
DEPOSIT_U = 7_000_000
WITHDRAWAL_U = 5_000_000
APP_ROLE = "backoffice_app"  # the processes' role (DB_APP_ROLE's default), created by the release step


def postgres_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (the system's binaries, also installed in CI)."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()]
    assert found, "no PostgreSQL binaries in /usr/lib/postgresql/*/bin: the fault drill cannot run"
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


class OwnPostgres:
    """A PostgreSQL cluster of the drill's own, on a free port, trust auth, fsync off (it is thrown away)."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fault-drill-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres system user
            self.user = "postgres"
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def _run(self, *args: str, timeout: float = 90) -> None:
        completed = subprocess.run(  # noqa: S603
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout, user=self.user
        )
        assert completed.returncode == 0, f"{' '.join(args[:2])} failed: {completed.stdout}{completed.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nfull_page_writes = off\nmax_connections = 200\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session is disconnected, then the server is back (waited for)."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "-t", "60", "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


class Db:
    """Reads of the drill's database from the drill itself: one connection per thread, reopened after a fault."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
        """The rows, or None while the database cannot answer (the caller tries again later)."""
        conn = getattr(self._local, "conn", None)
        try:
            if conn is None or conn.closed:
                conn = self._local.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
            return conn.execute(sql, params).fetchall()
        except psycopg.Error:
            if conn is not None:
                conn.close()
            self._local.conn = None
            return None

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def balance(self, public_id: str, suffix: str, currency: str) -> int | None:
        return self.one(
            "SELECT balance_u FROM ledger_account WHERE name = %s AND currency = %s",
            (f"user:{public_id}:{suffix}", currency),
        )


def _start(command: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A process of the back office in its own process group (killed with its children at once)."""
    return subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_group(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if process is None:
        return
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def children(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's master: its workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@dataclass
class Drill:
    """The drill's servers and processes; `start()` brings everything up, `close()` stops all of it."""

    work: Path
    pg: OwnPostgres = field(default_factory=OwnPostgres)
    redis: OwnRedis = field(default_factory=OwnRedis)
    web_port: int = field(default_factory=free_port)
    stub_port: int = field(default_factory=free_port)
    data: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    _next_player: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    database = "fault_drill"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def stub(self) -> str:
        return f"http://127.0.0.1:{self.stub_port}"

    @property
    def database_url(self) -> str:
        """What the processes log in as: the application role (`setup_db_roles`, run by the release step)."""
        return self.pg.url(self.database).replace("postgres://postgres@", f"postgres://{APP_ROLE}@", 1)

    @property
    def owner_url(self) -> str:
        """The tables' owner (the cluster's superuser): the release step, the drill's data and its checks."""
        return self.pg.url(self.database)

    def env(self, **extra: str) -> dict[str, str]:
        """Production settings of this machine (`prod_local`), as `make prod-local` sets them, on the drill's servers."""
        if not self.secrets:
            self.secrets = {
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "STRIPE_API_KEY": f"sk_live_drill{secrets.token_hex(12)}",
                "STRIPE_WEBHOOK_SECRET": f"whsec_{secrets.token_hex(16)}",
                "ADYEN_API_KEY": f"AQE{secrets.token_hex(16)}",
                "ADYEN_HMAC_KEY": secrets.token_hex(32).upper(),
                "CUSTODY_WEBHOOK_KEY": secrets.token_hex(32),
                "METRICS_TOKEN": secrets.token_urlsafe(32),
            }
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))},
            **self.secrets,
            "PYTHON": sys.executable,
            "DJANGO_SETTINGS_MODULE": "config.settings.prod_local",
            "DATABASE_URL": self.database_url,
            "DATABASE_OWNER_URL": self.owner_url,
            "REDIS_URL": self.redis.url,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "STRIPE_API_BASE": self.stub,
            "ADYEN_API_BASE": self.stub,
            "ADYEN_ENVIRONMENT": "live",
            "ADYEN_LIVE_ENDPOINT_PREFIX": "drill",
            "STRIPE_KEY_MODE": "live",
            "ADYEN_MERCHANT_ACCOUNT": "DrillMerchant",
            "ADYEN_BALANCE_ACCOUNT_ID": "BA_DRILL",
            "DEPOSIT_RETURN_URL": f"{self.base}/deposits/return",
            "METRICS_ALLOWED_IPS": "127.0.0.1",
            "STATIC_ROOT": str(self.work / "static"),
            "LOG_LEVEL": "WARNING",
            "BIND": f"127.0.0.1:{self.web_port}",
            "WEB_CONCURRENCY": "3",
            "WORKER_CONCURRENCY": "2",
            **extra,
        }

    # --- servers and processes ----------------------------------------------------------------------------

    def start(self, *, players: int) -> None:
        (self.work / "static").mkdir(parents=True, exist_ok=True)
        self.pg.init()
        self.pg.start()
        self.redis.start()
        self.setup_database(players=players)
        self.processes["stub"] = _start(
            [sys.executable, "-m", "webhooks.stub", "--port", str(self.stub_port), "--timeout-delay", "60"],
            self.env(),
            self.log("stub"),
        )
        wait_until(lambda: self._answers(f"{self.stub}/_stub/call-stats"), 30, "the PSP stub to answer")
        self.start_web()
        self.start_worker("payouts")
        self.start_worker("others")
        for name in ("beat", "beat-standby"):  # one schedules, the other stands by (config/beat.py)
            self.processes[name] = _start([str(ROOT / "bin" / "backoffice"), "beat"], self.env(), self.log(name))
        wait_until(lambda: self._answers(f"{self.base}/health/ready"), 90, "gunicorn to answer /health/ready")
        for name in ("payouts", "others"):
            self.wait_worker_ready(name)

    def wait_worker_ready(self, name: str) -> None:
        wait_until(lambda: "ready." in self.log_text(f"worker-{name}"), 90, f"the {name} worker to be ready")

    def setup_database(self, *, players: int) -> None:
        """The drill's database: created, migrated by the release step, then the drill's data (one place)."""
        self.pg.create_database(self.database)
        release = subprocess.run(  # noqa: S603
            [str(ROOT / "bin" / "backoffice"), "migrate"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert release.returncode == 0, f"bin/backoffice migrate failed:\n{release.stdout}{release.stderr}"
        out = self.work / "drill-data.json"
        seeded = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "ops.tests.drill_setup", str(out), "--players", str(players)],
            cwd=ROOT,
            env={**self.env(), "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": self.owner_url},
            capture_output=True,
            text=True,
            timeout=300 + MAX_WAIT_S,  # it may wait out a session's close for the next round (drill_setup.py)
        )
        assert seeded.returncode == 0, f"the drill's data:\n{seeded.stdout}{seeded.stderr}"
        self.data = json.loads(out.read_text())

    def log(self, name: str) -> IO[bytes]:
        return (self.work / f"{name}.log").open("ab")

    def log_text(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self, lines: int = 15) -> str:
        return "\n".join(
            f"----- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in sorted(self.work.glob("*.log"))
        )

    def start_web(self) -> None:
        self.processes["web"] = _start([str(ROOT / "bin" / "backoffice"), "web"], self.env(), self.log("web"))

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        """`payouts`: `bin/backoffice worker payouts`; `others`: one worker for the three other queues."""
        if name == "payouts":
            command = [str(ROOT / "bin" / "backoffice"), "worker", "payouts"]
        else:
            command = [
                *(sys.executable, "-m", "celery", "-A", "config", "worker"),
                *("--queues", "webhooks,rounds,housekeeping", "--hostname", "others@%h"),
                *("--concurrency", "2", "--loglevel", "INFO"),
            ]
        self.processes[f"worker-{name}"] = process = _start(command, self.env(), self.log(f"worker-{name}"))
        return process

    def web_workers(self) -> list[int]:
        return children(self.processes["web"].pid)

    def close(self) -> None:
        for name in ("beat", "beat-standby", "worker-payouts", "worker-others", "web", "stub"):
            stop_group(self.processes.pop(name, None))
        self.redis.stop()
        self.pg.stop()

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    # --- the PSP stub ---------------------------------------------------------------------------------------

    def stub_mode(self, kind: str, mode: str, delay: float | None = None) -> None:
        body = {"kind": kind, "mode": mode, "delay": delay}
        assert requests.post(f"{self.stub}/_stub/mode", json=body, timeout=5).status_code == 200

    def stub_calls(self) -> dict[str, dict[str, int]]:
        calls: dict[str, dict[str, int]] = requests.get(f"{self.stub}/_stub/call-stats", timeout=5).json()["calls"]
        return calls

    # --- commands on the drill's database -----------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [str(ROOT / "bin" / "backoffice"), "manage", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # --- flows ------------------------------------------------------------------------------------------------

    def player(self) -> dict[str, Any]:
        """A player nobody used yet (one bet per player per round; a player's balance checks one flow)."""
        with self._lock:
            players = self.data["players"]
            assert self._next_player < len(players), "the drill ran out of players: raise --players"
            self._next_player += 1
            return dict(players[self._next_player - 1])


@dataclass
class Flow:
    """One player's money flow, driven until the database says it is done (or the drill gives up)."""

    drill: Drill
    db: Db
    player: dict[str, Any] = field(init=False)
    key: str = field(default_factory=lambda: f"drill-{uuid.uuid4()}")
    started_at: float = 0.0
    deadline: float = 0.0  # the flow gives up then (the scenario sets it from the fault's end)
    done_at: float | None = None
    refused: str = ""  # a final answer other than success (the flow ends, and the drill reports it)
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)

    kind = "flow"

    def __post_init__(self) -> None:
        self.player = self.drill.player()

    def headers(self, token: str | None = None, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Token {token or self.player['token']}"}
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def post(self, url: str, **kwargs: Any) -> requests.Response | None:
        """One POST; None when no answer came (the connection failed or timed out)."""
        self.sent += 1
        try:
            response = requests.post(url, timeout=HTTP_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            self.answers[type(exc).__name__] += 1
            return None
        self.answers[str(response.status_code)] += 1
        return response

    def step(self) -> bool:
        """Do the next thing; True once done."""
        raise NotImplementedError

    def run(self) -> None:
        self.started_at = time.monotonic()
        while time.monotonic() < self.deadline and not self.refused:
            if self.step():
                self.done_at = time.monotonic()
                return
            time.sleep(RETRY_PAUSE_S)

    def exactly_once(self) -> str:
        """Empty when the money moved exactly once, else what is wrong."""
        raise NotImplementedError

    def label(self) -> str:
        return f"{self.kind} {self.key} ({self.player['public_id'][:8]})"


class BetFlow(Flow):
    kind = "bet"

    def step(self) -> bool:
        if self.db.one("SELECT count(*) FROM rounds_bet WHERE player_id = %s", (self.player["id"],)):
            return True
        response = self.post(
            f"{self.drill.base}/v1/rounds/{self.drill.data['round']}/bets",
            json={"side": "UP", "stake_u": BET_STAKE_U},
            headers=self.headers(key=self.key),
        )
        if response is None or response.status_code in RETRY_STATUSES:
            return False
        if response.status_code != 201:
            self.refused = f"{response.status_code} {response.text[:200]}"
        return False  # done when the database shows the bet

    def exactly_once(self) -> str:
        bets = self.db.one("SELECT count(*) FROM rounds_bet WHERE player_id = %s", (self.player["id"],))
        available = self.db.balance(self.player["public_id"], "available", self.drill.data["currency"])
        expected = self.drill.data["funds_u"] - BET_STAKE_U
        if bets != 1 or available != expected:
            return f"{bets} bet(s), available {available} (expected 1 bet, {expected})"
        return ""


class DepositFlow(Flow):
    """A signed custody deposit webhook (as the custodian sends it), sent again until stored; done when credited."""

    kind = "deposit"

    delivered: bool = False  # the back office answered 2xx: the deposit is stored, crediting is its work now

    def step(self) -> bool:
        status = self.db.one("SELECT status FROM webhooks_deposit WHERE reference = %s", (self.key,))
        if status == "credited":
            return True
        if self.delivered:
            return False
        from webhooks.stub import send_custody_deposit

        payload = {
            "reference": self.key,
            "user_id": self.player["public_id"],
            "amount_u": DEPOSIT_U,
            "currency": self.drill.data["currency"],
        }
        self.sent += 1
        try:
            response = send_custody_deposit(
                f"{self.drill.base}/webhooks/deposits",
                payload,
                self.drill.secrets["CUSTODY_WEBHOOK_KEY"],
                HTTP_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            self.answers[type(exc).__name__] += 1
            return False
        self.answers[str(response.status_code)] += 1
        self.delivered = response.status_code < 300
        if response.status_code >= 300 and response.status_code not in RETRY_STATUSES:
            self.refused = f"{response.status_code} {response.text[:200]}"
        return False

    def exactly_once(self) -> str:
        deposits = self.db.rows("SELECT status FROM webhooks_deposit WHERE reference = %s", (self.key,))
        available = self.db.balance(self.player["public_id"], "available", self.drill.data["currency"])
        expected = self.drill.data["funds_u"] + DEPOSIT_U
        if deposits != [("credited",)] or available != expected:
            return f"deposit rows {deposits}, available {available} (expected one credited, {expected})"
        return ""


class WithdrawalFlow(Flow):
    """Requested by the player, approved by the finance operator, submitted by the payout worker to the PSP
    stub, confirmed by the PSP's signed `booked` webhook once the back office learnt the transfer's id."""

    kind = "withdrawal"
    withdrawal_id: int | None = None
    confirmed: bool = False

    def state(self) -> tuple[str, str, int] | None:
        found = self.db.rows(
            "SELECT state, psp_reference, payout_generation FROM payouts_withdrawal WHERE id = %s",
            (self.withdrawal_id,),
        )
        return found[0] if found else None

    def step(self) -> bool:
        if self.withdrawal_id is None:
            return self._request()
        row = self.state()
        if row is None:
            return False
        state, psp_reference, generation = row
        if state == "paid":
            return True
        if state == "requested":
            response = self.post(
                f"{self.drill.base}/v1/withdrawals/{self.withdrawal_id}/approve",
                json={"reason": "fault drill"},
                headers=self.headers(token=self.drill.data["operator_token"]),
            )
            if response is not None and response.status_code not in (200, 409, *RETRY_STATUSES):
                self.refused = f"approve: {response.status_code} {response.text[:200]}"
            return False
        if state == "payout_submitted" and psp_reference and not self.confirmed:
            self._confirm(psp_reference, f"wd-{self.withdrawal_id}-{generation}")
        elif state not in ("approved", "payout_submitted"):
            self.refused = f"withdrawal {self.withdrawal_id} went to {state}"
        return False

    def _request(self) -> bool:
        response = self.post(
            f"{self.drill.base}/v1/withdrawals",
            json={
                "amount_u": WITHDRAWAL_U,
                "currency": self.drill.data["currency"],
                "provider": "adyen",
                "destination": {"transfer_instrument_id": f"TIDRILL{self.player['id']:012d}"},
            },
            headers=self.headers(key=self.key),
        )
        if response is None or response.status_code in RETRY_STATUSES:
            return False
        if response.status_code != 201:
            self.refused = f"request: {response.status_code} {response.text[:200]}"
            return False
        self.withdrawal_id = int(response.json()["id"])
        return False

    def _confirm(self, psp_reference: str, key: str) -> None:
        """The PSP books the transfer and says so (signed webhook); sent again until the back office answers 2xx."""
        from webhooks.stub import send_adyen_transfer_webhook

        transfer = {
            "id": psp_reference,
            "reference": key,
            "amount": {"value": WITHDRAWAL_U, "currency": self.drill.data["currency"]},
        }
        self.sent += 1
        try:
            response = send_adyen_transfer_webhook(
                f"{self.drill.base}/webhooks/payouts/adyen",
                transfer,
                "booked",
                self.drill.secrets["ADYEN_HMAC_KEY"],
                timeout=HTTP_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            self.answers[type(exc).__name__] += 1
            return
        self.answers[f"webhook {response.status_code}"] += 1
        self.confirmed = response.status_code < 300

    def exactly_once(self) -> str:
        if self.withdrawal_id is None:
            return "never requested"
        currency = self.drill.data["currency"]
        journals = self.db.one(
            "SELECT count(*) FROM ledger_journal WHERE reference = %s", (f"withdrawal:{self.withdrawal_id}:payout",)
        )
        available = self.db.balance(self.player["public_id"], "available", currency)
        held = self.db.balance(self.player["public_id"], "held", currency)
        expected = self.drill.data["funds_u"] - WITHDRAWAL_U
        if journals != 1 or available != expected or held != 0:
            return f"{journals} payout journal(s), available {available}, held {held} (expected 1, {expected}, 0)"
        return ""

    def psp_calls(self, calls: dict[str, dict[str, int]]) -> str:
        """Empty when each payout attempt made at most one HTTP call, never two at once, and the PSP paid once."""
        attempts = self.db.rows(
            "SELECT idempotency_key, count(*) FROM payouts_payoutattempt WHERE withdrawal_id = %s GROUP BY 1",
            (self.withdrawal_id,),
        )
        if attempts is None:
            return "the database did not answer"
        problems = []
        executed = 0
        for key, count in attempts:
            seen = calls.get(key, {"calls": 0, "executed": 0, "max_in_flight": 0})
            executed += seen["executed"]
            if seen["calls"] > count:
                problems.append(f"{key}: {seen['calls']} HTTP calls for {count} attempt(s)")
            if seen["max_in_flight"] > 1:
                problems.append(f"{key}: {seen['max_in_flight']} calls in flight at once")
        if executed != 1:
            problems.append(f"the PSP executed {executed} payout(s) for withdrawal {self.withdrawal_id}")
        return "; ".join(problems)


def run_flows(flows: list[Flow], deadline: float) -> list[threading.Thread]:
    """Start each flow in its own thread; each gives up at its `deadline` (moved later by the scenario)."""
    threads = []
    for flow in flows:
        flow.deadline = deadline
        thread = threading.Thread(target=flow.run, name=flow.label(), daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def load(drill: Drill, stop: threading.Event, *, threads: int = 4) -> list[threading.Thread]:
    """Reads under load until `stop`: the current round and the players' wallets."""
    tokens = [p["token"] for p in drill.data["players"][:20]]

    def reader(n: int) -> None:
        session = requests.Session()
        while not stop.is_set():
            path = "/v1/rounds/current" if n % 2 else "/v1/wallet"
            try:
                session.get(f"{drill.base}{path}", headers={"Authorization": f"Token {tokens[n]}"}, timeout=5)
            except requests.RequestException:
                time.sleep(0.1)

    started = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(threads)]
    for thread in started:
        thread.start()
    return started


@dataclass
class Measured:
    """What one scenario measured, written to the drill's JSON artifact."""

    scenario: str
    fault: str
    fault_seconds: float
    flows: dict[str, int]
    recovery_s: float | None  # the last flow done, seconds after the fault's end (None: not all done)
    recovery_by_kind_s: dict[str, float | None]
    not_done: list[str]
    refused: list[str]
    not_exactly_once: list[str]
    psp_calls: list[str]
    check_ledger: str
    answers: dict[str, int]
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def measure(
    scenario: str, fault: str, flows: list[Flow], *, fault_started: float, fault_ended: float, drill: Drill, db: Db
) -> Measured:
    """Recovery times, exactly-once, PSP calls per attempt and check_ledger, after a scenario's flows ended."""

    def recovery(group: list[Flow]) -> float | None:
        if not group or any(f.done_at is None for f in group):
            return None
        return round(max(0.0, max(f.done_at or 0.0 for f in group) - fault_ended), 1)

    kinds = sorted({f.kind for f in flows})
    answers: Counter[str] = Counter()
    for flow in flows:
        answers.update(flow.answers)
    calls = drill.stub_calls()
    withdrawals = [f for f in flows if isinstance(f, WithdrawalFlow) and f.withdrawal_id is not None]
    ledger = drill.manage("check_ledger")
    return Measured(
        scenario=scenario,
        fault=fault,
        fault_seconds=round(fault_ended - fault_started, 1),
        flows=dict(Counter(f.kind for f in flows)),
        recovery_s=recovery(flows),
        recovery_by_kind_s={kind: recovery([f for f in flows if f.kind == kind]) for kind in kinds},
        not_done=[f"{f.label()}: answers {dict(f.answers)}" for f in flows if f.done_at is None and not f.refused],
        refused=[f"{f.label()}: {f.refused}" for f in flows if f.refused],
        not_exactly_once=[f"{f.label()}: {problem}" for f in flows if f.done_at and (problem := f.exactly_once())],
        psp_calls=[f"{f.label()}: {problem}" for f in withdrawals if (problem := f.psp_calls(calls))],
        check_ledger=(ledger.stdout + ledger.stderr).strip()[-2000:] if ledger.returncode else "OK",
        answers=dict(answers),
    )


def timed(action: Callable[[], None]) -> tuple[float, float]:
    started = time.monotonic()
    action()
    return started, time.monotonic()
