"""Real processes for fault tests: a Redis server of the test's own, a Celery worker, the web server.

They run on the test database (tests using them need `django_db(transaction=True)`), never on the machine's
shared Redis unless the test passes its own REDIS_URL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until `predicate()`; return the seconds it took, or fail the test."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class OwnRedis:
    """A redis-server of the test's own, without persistence, on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed: this test cannot run (and must not pass as skipped)"
        self.process = subprocess.Popen(  # noqa: S603
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 10, "redis-server to answer")

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None


def django_env(*, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a child process on the test database and the given broker."""
    from .db_role_harness import app_role_active

    db = settings.DATABASES["default"]
    user = settings.DB_APP_ROLE if app_role_active() else db["USER"]  # the suite's processes: the app role
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": redis_url,
        **extra,
    }


def start_worker(env: dict[str, str], log: IO[str], *args: str) -> subprocess.Popen[bytes]:
    """A Celery worker in its own process group (so a test can kill it and its children at once)."""
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", "--loglevel", "WARNING", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_web(env: dict[str, str], log: IO[str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(*processes: Any, kill: bool = False) -> None:
    """Stop processes started here (their whole process group)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


class Supervised:
    """A process restarted whenever it exits, as the deployment's supervisor does (compose.yaml's
    `restart: unless-stopped`): `start()`, `stop()`, and `restarts`, how many times it had to start it again.

    A Celery worker can exit when its broker goes away: kombu 5.7's Redis transport, closing the channel of a
    lost connection with unacknowledged messages (acks_late), raises AttributeError in `_connparams` and the
    worker stops with "Unrecoverable error". Production restarts it; a test of the deployment's recovery
    does the same, and reports it.
    """

    def __init__(self, start: Callable[[], subprocess.Popen[bytes]], *, check_every_s: float = 0.5) -> None:
        import threading

        self._start = start
        self._check_every_s = check_every_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> Supervised:
        self.process = self._start()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(self._check_every_s):
            if self.process is not None and self.process.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                self.process = self._start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        if self.process is not None:
            stop(self.process)
