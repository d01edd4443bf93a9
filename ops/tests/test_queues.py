"""Separate queues: every task is routed and documented, and a hanging payout PSP does not delay deposits.

The isolation test starts the real process list's workers (`bin/backoffice worker payouts` and
`bin/backoffice worker webhooks`) as subprocesses on the test database and Redis, points the payout
provider at a server that accepts connections and never answers, and shows a deposit webhook is credited
while the payout worker is still stuck in its PSP call.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from config.celery_app import app
from payouts.models import Withdrawal
from payouts.tests.helpers import destination_for
from webhooks.models import WebhookEvent
from webhooks.tests.helpers import CUSTODY_URL, available, custody_delivery, custody_payload

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "docs" / "ops" / "queues-and-retries-matrix.md"
ROW = re.compile(r"^\|\s*`([a-z_.]+)`\s*\|\s*`([a-z]+)`\s*\|", re.MULTILINE)


def _project_tasks() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_every_task_is_routed_to_one_of_the_four_queues() -> None:
    tasks = _project_tasks()
    assert tasks, "no tasks discovered"
    routes = settings.CELERY_TASK_ROUTES
    assert tasks - set(routes) == set(), "tasks without a route"
    assert set(routes) - tasks == set(), "routes for tasks that do not exist"
    for name in tasks:
        queue = app.amqp.router.route({}, name)["queue"].name
        assert queue == routes[name]["queue"], name
        assert queue in settings.CELERY_QUEUE_NAMES, name
    assert {r["queue"] for r in routes.values()} == set(settings.CELERY_QUEUE_NAMES)


def test_the_matrix_lists_every_task_with_its_queue() -> None:
    documented = dict(ROW.findall(MATRIX.read_text()))
    code = {name: settings.CELERY_TASK_ROUTES[name]["queue"] for name in _project_tasks()}
    assert documented == code


def test_the_process_list_starts_one_worker_per_queue() -> None:
    procfile = (ROOT / "Procfile").read_text()
    started = set(re.findall(r"^worker-[a-z]+: bin/backoffice worker ([a-z]+)$", procfile, re.MULTILINE))
    assert started == set(settings.CELERY_QUEUE_NAMES)


class HangingPSP:
    """A TCP server on 127.0.0.1 that accepts connections and never answers until stopped."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.held.append(conn)

    def open_connections(self) -> int:
        """How many held connections the client has not closed (a timed-out client closes its end)."""
        count = 0
        for conn in self.held:
            conn.setblocking(False)
            try:
                closed = conn.recv(65536, socket.MSG_PEEK) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            count += 0 if closed else 1
        return count

    def __enter__(self) -> HangingPSP:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_queue_worker(queue: str, logdir: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """Start `bin/backoffice worker <queue>` on the test database and broker."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.CELERY_BROKER_URL,
        "WORKER_CONCURRENCY": "1",
        "LOG_LEVEL": "INFO",
        **extra_env,
    }
    log = logdir / f"worker-{queue}.log"
    process = subprocess.Popen(  # noqa: S603 - our own entrypoint
        [str(ROOT / "bin" / "backoffice"), "worker", queue, "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return process, log


@pytest.fixture
def queue_workers(transactional_db: Any, tmp_path: Path) -> Iterator[tuple[HangingPSP, dict[str, Path]]]:
    app.control.purge()
    with HangingPSP() as psp:
        extra = {"ADYEN_API_BASE": psp.url, "PAYOUT_PROVIDER_TIMEOUT_S": "120"}
        workers = [start_queue_worker(queue, tmp_path, extra) for queue in ("payouts", "webhooks")]
        logs = {queue: log for queue, (_, log) in zip(("payouts", "webhooks"), workers, strict=True)}
        try:
            for queue, log in logs.items():
                wait_for(lambda log=log: "ready." in log.read_text(), 60, f"the {queue} worker to start")
            yield psp, logs
        finally:
            for process, _ in workers:
                process.terminate()
            psp.__exit__()  # release the hung payout call so the payout worker can shut down
            for process, _ in workers:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            app.control.purge()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_hanging_payout_psp_does_not_delay_deposit_crediting(
    queue_workers: tuple[HangingPSP, dict[str, Path]],
    player: Any,
    make_staff: Any,
    fund: Any,
    api_client_for: Any,
    settings: Any,
) -> None:
    psp, logs = queue_workers
    settings.WEBHOOK_CREDIT_IN_REQUEST = False  # the deposit takes the queue (not credited in its request)
    fund(player, 100_000_000)
    finance = make_staff(role="finance")
    created = (
        api_client_for(player)
        .post(
            "/v1/withdrawals",
            {"amount_u": 10_000_000, "currency": "USDC", "provider": "adyen", "destination": destination_for("adyen")},
            format="json",
            HTTP_IDEMPOTENCY_KEY="queue-isolation",
        )
        .json()
    )
    assert api_client_for(finance).post(f"/v1/withdrawals/{created['id']}/approve").status_code == 200
    # The payout worker is now inside the PSP call, which will not answer for as long as the test runs.
    wait_for(lambda: psp.open_connections() >= 1, 30, "the payout worker to call the PSP")
    hung_since = time.monotonic()

    delivery = custody_delivery(custody_payload(player, amount_u=7_000_000, reference="tx-queue-isolation"))
    response = Client().post(CUSTODY_URL, data=delivery.body, content_type="application/json", headers=delivery.headers)
    assert response.status_code == 202, response.content
    wait_for(lambda: available(player, "USDC") == 90_000_000 + 7_000_000, 30, "the deposit to be credited")
    credited_after_s = time.monotonic() - hung_since

    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert psp.open_connections() >= 1, "the payout call was no longer hanging when the deposit was credited"
    assert Withdrawal.objects.get(pk=created["id"]).state in (
        Withdrawal.State.APPROVED,
        Withdrawal.State.PAYOUT_SUBMITTED,
    )
    assert "Task payouts.tasks.submit_payout[" in logs["payouts"].read_text()
    assert "Task webhooks.tasks.process_webhook_event[" in logs["webhooks"].read_text()
    assert "Task webhooks.tasks.process_webhook_event[" not in logs["payouts"].read_text()
    print(f"deposit credited {credited_after_s:.2f} s after the payout PSP call started hanging")
