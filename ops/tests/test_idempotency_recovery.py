"""An Idempotency-Key whose request died is usable again within seconds; a live one still answers 409.

"In progress" is an advisory lock held by the request's own database connection (ops/idempotency.py):
it dies with the process or the connection, not after a timeout. The request is held mid-flight by a row
lock the test takes on the player's account (the transfer waits for it), so it is really running when the
duplicate arrives, and really dead when the retry does.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from rest_framework.test import APIClient

from conftest import token_client
from ledger.models import Account, Journal
from ledger.services import house_account
from ops.idempotency import _lock_id
from ops.metrics import IDEMPOTENCY_EVENTS
from ops.models import IdempotencyKey
from ops.tests.db_role_harness import as_db_owner
from ops.tests.processes import ROOT, django_env, wait_until

pytestmark = [pytest.mark.urls("ops.tests.urls"), pytest.mark.django_db(transaction=True)]
URL = "/test/pay-house"

# A request in a process of its own: it prints nothing until its answer (it is killed before that).
REQUEST_SCRIPT = """
import sys
import django
django.setup()
from django.test.utils import override_settings
from rest_framework.test import APIClient
from accounts.models import User
client = APIClient()
client.force_authenticate(User.objects.get(pk=int(sys.argv[1])))
with override_settings(ROOT_URLCONF="ops.tests.urls"):
    response = client.post("/test/pay-house", {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY=sys.argv[2])
print(response.status_code, flush=True)
"""


def money(player: Any) -> tuple[int, int, int]:
    """The player's available balance, the house's, and the fee journals."""
    available = Account.objects.get(owner=player, currency="USDC", kind=Account.Kind.USER_AVAILABLE).balance_u
    return available, house_account(currency="USDC").balance_u, Journal.objects.filter(type="fee").count()


def outcome(name: str) -> float:
    return float(IDEMPOTENCY_EVENTS.labels(outcome=name)._value.get())


class Holder:
    """Another connection holding a lock until released: the player's account row, or a key's advisory lock."""

    def __init__(self, sql: str, params: list[Any]) -> None:
        self.sql, self.params = sql, params
        self.held, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            # As the owner: the application role may not lock ledger rows FOR UPDATE (only its functions do).
            with transaction.atomic(), as_db_owner() as cursor:
                cursor.execute(self.sql, self.params)
                self.held.set()
                self.release.wait(60)
                if self.sql.startswith("SELECT pg_advisory_lock"):
                    cursor.execute("SELECT pg_advisory_unlock(%s)", self.params)
        finally:
            connection.close()

    def __enter__(self) -> Holder:
        self.thread.start()
        assert self.held.wait(10), "the holder could not take its lock"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(10)


def account_lock(player: Any) -> Holder:
    account = Account.objects.get(owner=player, currency="USDC", kind=Account.Kind.USER_AVAILABLE)
    return Holder("SELECT id FROM ledger_account WHERE id = %s FOR UPDATE", [account.pk])


def waiting_backend() -> int | None:
    """The backend (of this test database) blocked on a row lock: the request held mid-flight (seen as the
    owner: another role's wait events are hidden from the application role)."""
    with as_db_owner() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def holds_advisory_lock(pid: int) -> bool:
    with as_db_owner() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted", [pid])
        return bool(cursor.fetchone()[0])


@contextlib.contextmanager
def refusing_connections() -> Iterator[None]:
    """This test database refuses new connections (open ones go on), as while it restarts."""
    import psycopg

    db = connection.settings_dict
    name = db["NAME"]
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def retry_until_answered(client: APIClient, key: str, body: dict[str, Any], within_s: float) -> tuple[Any, float]:
    """Send the retry until it is no longer 409; return the answer and how long that took."""
    started = time.monotonic()
    while True:
        response = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        elapsed = time.monotonic() - started
        if response.status_code != 409 or elapsed > within_s:
            return response, elapsed
        time.sleep(0.1)


@pytest.fixture
def funded(player: Any, fund: Any) -> Iterator[Any]:
    fund(player, 1_000)
    house_account(currency="USDC")
    yield player


def test_a_killed_request_leaves_its_key_and_a_retry_within_seconds_runs_it_once(
    funded: Any, tmp_path: Path, assert_ledger_ok: Any
) -> None:
    player, client = funded, token_client(funded)
    before = money(player)
    recovered_before = outcome("recovered")
    env = django_env(redis_url=settings.CELERY_BROKER_URL)
    with account_lock(player), open(tmp_path / "answer.txt", "w") as out, open(tmp_path / "request.log", "w") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", REQUEST_SCRIPT, str(player.pk), "killed"], cwd=ROOT, env=env, stdout=out, stderr=log
        )
        try:
            wait_until(
                lambda: waiting_backend() is not None or process.poll() is not None,
                60,
                "the request to be held mid-flight",
            )
            assert process.poll() is None, (tmp_path / "request.log").read_text()
            pid = waiting_backend()
            assert pid is not None and holds_advisory_lock(pid)
            assert IdempotencyKey.objects.get(user=player, key="killed").state == IdempotencyKey.State.IN_PROGRESS

            # The first request is alive: a duplicate is 409, another body is 422, and nothing moves.
            duplicate = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="killed")
            assert duplicate.status_code == 409 and duplicate.json()["type"] == "idempotency/in-progress"
            other = client.post(URL, {"amount_u": 99}, format="json", HTTP_IDEMPOTENCY_KEY="killed")
            assert other.status_code == 422 and other.json()["type"] == "idempotency/key-reused"
            assert money(player) == before
        finally:
            process.kill()  # SIGKILL: no handler, no release; the row lock is released when the block ends
            process.wait(10)
    assert (tmp_path / "answer.txt").read_text() == "", "the killed request must not have answered"
    killed_at = time.monotonic()
    assert IdempotencyKey.objects.get(user=player, key="killed").state == IdempotencyKey.State.IN_PROGRESS

    retried, _ = retry_until_answered(client, "killed", {"amount_u": 100}, within_s=10)
    recovery_s = time.monotonic() - killed_at
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried, retried.content
    assert recovery_s < 10, f"the key was usable again only after {recovery_s:.1f} s"
    print(f"killed request: key usable again {recovery_s:.2f} s after the kill")  # the figure in docs (pytest -s)
    assert outcome("recovered") == recovered_before + 1
    assert money(player) == (before[0] - 100, before[1] + 100, before[2] + 1)  # moved once

    again = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="killed")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true" and again.json() == retried.json()
    still_other = client.post(URL, {"amount_u": 99}, format="json", HTTP_IDEMPOTENCY_KEY="killed")
    assert still_other.status_code == 422
    assert money(player) == (before[0] - 100, before[1] + 100, before[2] + 1)
    assert_ledger_ok()


def test_a_request_whose_connection_is_cut_by_a_database_restart_frees_its_key_within_seconds(
    funded: Any, assert_ledger_ok: Any
) -> None:
    player, client = funded, token_client(funded)
    before = money(player)
    failures: list[BaseException] = []

    def first_request() -> None:
        try:
            answer = token_client(player).post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="cut")
            if answer.status_code == 503:  # the database went away: 503 problem+json (ops/unavailable.py)
                failures.append(AssertionError(answer.content))
        except Exception as exc:  # or the test client re-raises the view's database error
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    with account_lock(player):
        thread.start()
        wait_until(lambda: waiting_backend() is not None or bool(failures), 20, "the request to be held mid-flight")
        assert not failures, failures
        pid = waiting_backend()
        assert pid is not None
        duplicate = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="cut")
        assert duplicate.status_code == 409
        # What a database restart does: the request's connection is cut, and the database refuses new ones
        # for a while, so the request cannot clean up after itself (its key stays in progress).
        with refusing_connections(), as_db_owner() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            cut_at = time.monotonic()
            thread.join(20)
    assert failures, "the first request should have failed with its connection"
    assert IdempotencyKey.objects.get(user=player, key="cut").state == IdempotencyKey.State.IN_PROGRESS
    assert money(player) == before

    retried, _ = retry_until_answered(client, "cut", {"amount_u": 100}, within_s=10)
    recovery_s = time.monotonic() - cut_at
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried, retried.content
    assert recovery_s < 10
    print(f"connection cut: key usable again {recovery_s:.2f} s after the cut")
    assert money(player) == (before[0] - 100, before[1] + 100, before[2] + 1)
    assert client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="cut")["Idempotent-Replayed"]
    assert money(player) == (before[0] - 100, before[1] + 100, before[2] + 1)
    assert_ledger_ok()


def test_a_key_held_by_a_live_request_is_409_however_old(funded: Any) -> None:
    """No timeout takes a live request's key: its row may be a day old, a duplicate still gets 409."""
    player, client = funded, token_client(funded)
    assert client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="long").status_code == 201
    # As if that request were still running, for a day: its row in progress, its lock held.
    IdempotencyKey.objects.filter(key="long").update(
        state=IdempotencyKey.State.IN_PROGRESS, created_at="2000-01-01T00:00:00Z"
    )
    before = money(player)
    with Holder("SELECT pg_advisory_lock(%s)", [_lock_id(player, "long")]):
        response = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="long")
        assert response.status_code == 409 and response.json()["type"] == "idempotency/in-progress"
        other = client.post(URL, {"amount_u": 1}, format="json", HTTP_IDEMPOTENCY_KEY="long")
        assert other.status_code == 422  # another body: refused even while the first runs
    assert money(player) == before


def test_a_duplicate_while_the_first_holds_the_key_is_409_and_moves_nothing(funded: Any) -> None:
    player, client = funded, token_client(funded)
    before = money(player)
    with Holder("SELECT pg_advisory_lock(%s)", [_lock_id(player, "busy")]):  # a live request with this key
        response = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="busy")
        assert response.status_code == 409 and response.json()["type"] == "idempotency/in-progress"
        assert not IdempotencyKey.objects.filter(key="busy").exists()
        assert money(player) == before
    done = client.post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="busy")
    assert done.status_code == 201 and money(player) == (before[0] - 100, before[1] + 100, before[2] + 1)


def test_a_run_that_lost_its_key_to_a_retry_stores_nothing_and_its_writes_roll_back(funded: Any) -> None:
    """The first run came back (its connection was cut, then Django reconnected) after a retry took its key
    over and finished: it must not overwrite the retry's response, and its own transfer must not commit."""
    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory

    from ledger.services import transfer, user_account
    from ops.idempotency import idempotent_call

    player = funded
    before = money(player)
    superseded_before = outcome("superseded")
    request = Request(
        APIRequestFactory().post(URL, {"amount_u": 100}, format="json", HTTP_IDEMPOTENCY_KEY="lost"),
        parsers=[JSONParser()],
    )
    request.user = player

    def the_retry_finishes_meanwhile() -> None:  # another connection: the retry's committed work
        try:
            IdempotencyKey.objects.filter(user=player, key="lost").update(
                created_at="2100-01-01T00:00:00Z",
                state=IdempotencyKey.State.COMPLETED,
                response_status=201,
                response_body={"journal": "the retry's"},
            )
        finally:
            connection.close()

    def handler() -> Response:
        transfer(
            source=user_account(user=player, currency="USDC"),
            destination=house_account(currency="USDC"),
            amount_u=100,
            type="fee",
            reference="pay-house:lost:first-run",
            actor=player,
        )
        retry = threading.Thread(target=the_retry_finishes_meanwhile)
        retry.start()
        retry.join(10)
        return Response({"journal": "this run's"}, status=201)

    response = idempotent_call(request=request, scope=f"POST {URL}", handler=handler)
    assert response.status_code == 201 and response.data == {"journal": "the retry's"}
    assert response["Idempotent-Replayed"] == "true"
    assert IdempotencyKey.objects.get(user=player, key="lost").response_body == {"journal": "the retry's"}
    assert money(player) == before  # this run's transfer rolled back with the response it could not store
    assert outcome("superseded") == superseded_before + 1
