"""The read-replica scenario, run by test_replica.py in its own process against a real primary and a real
streaming replica (Django's `default` and `replica` aliases cannot be swapped inside the test process).

Environment: DATABASE_URL (primary), DB_READONLY_ENDPOINT (replica), REPLICA_STOP_COMMAND (stops the replica).
Any failed check raises; the last line printed is `replica scenario: PASS`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from typing import Any

import django


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from prometheus_client import REGISTRY, generate_latest

    from accounts.models import User
    from ledger.models import Account
    from ledger.selectors import tvl
    from ledger.services import external_account, transfer, user_account
    from ops.actors import SystemActor
    from ops.db_router import read_from_replica

    assert "replica" in settings.DATABASES, "DB_READONLY_ENDPOINT did not add the replica alias"
    started = time.monotonic()
    call_command("migrate", verbosity=0)
    print(
        f"migrated the primary in {time.monotonic() - started:.1f} s"
    )  # on the primary only; the replica receives it by streaming
    player = User.objects.create_user("replica-player@example.com", "pw-replica-1")
    staff = User.objects.create_superuser("replica-admin@example.com", "pw-replica-2")

    def credit(n: int, amount_u: int) -> None:
        transfer(
            source=external_account(provider="test", currency="USDC"),
            destination=user_account(user=player, currency="USDC"),
            amount_u=amount_u,
            type="deposit",
            reference=f"replica-test:{n}",
            actor=SystemActor("test"),
        )

    def replica_sql(sql: str) -> Any:
        with connections["replica"].cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0] if cursor.description else None

    def fallbacks(reason: str) -> float:
        return REGISTRY.get_sample_value("db_replica_fallback_total", {"reason": reason}) or 0.0

    def report_cash(*, replica_up: bool = True) -> tuple[int, list[str], list[str]]:
        """TVL's total cash read as a report; which alias served the ledger query."""
        with contextlib.ExitStack() as stack:
            # Capturing opens a connection: not to a stopped replica (the router must do without it).
            on_replica = stack.enter_context(CaptureQueriesContext(connections["replica"])) if replica_up else None
            on_primary = stack.enter_context(CaptureQueriesContext(connections["default"]))
            stack.enter_context(read_from_replica())
            cash = tvl(currency="USDC").total_cash_u
        ledger_reads = (
            [q["sql"] for q in on_replica.captured_queries if "ledger_account" in q["sql"]] if on_replica else []
        )
        primary_reads = [q["sql"] for q in on_primary.captured_queries if "ledger_account" in q["sql"]]
        return cash, ledger_reads, primary_reads

    credit(1, 5_000_000)
    wait_for(lambda: replica_sql("SELECT COUNT(*) FROM ledger_journal") == 1, 30, "the replica to replay")

    # 1. A report reads the replica; the proof is in the data: with replay paused, it sees the old figure.
    replica_sql("SELECT pg_wal_replay_pause()")
    credit(2, 1_000_000)
    cash, on_replica, on_primary = report_cash()
    assert cash == 5_000_000 and on_replica and not on_primary, (cash, on_replica, on_primary)
    assert tvl(currency="USDC").total_cash_u == 6_000_000, "outside read_from_replica() reads stay on the primary"

    # 2. Inside a money transaction, reads stay on the primary; writes always go to the primary.
    with read_from_replica(), transaction.atomic():
        account = Account.objects.get(owner=player, kind=Account.Kind.USER_AVAILABLE)
        assert account.balance_u == 6_000_000, account.balance_u
        assert tvl(currency="USDC").total_cash_u == 6_000_000
    with read_from_replica():
        credit(3, 500_000)  # a write from report code: the (read-only) replica would refuse it
    expected = 6_500_000

    # 3. Lag beyond the limit: reads fall back to the primary and the metric says so.
    settings.DB_READONLY_MAX_LAG_S = 1.0
    time.sleep(1.5)
    before = fallbacks("lag")
    cash, on_replica, on_primary = report_cash()
    assert cash == expected and not on_replica and on_primary, (cash, on_replica, on_primary)
    assert fallbacks("lag") > before
    assert (REGISTRY.get_sample_value("db_replica_lag_seconds") or 0) > 1.0

    # 4. Replay resumed: the replica serves the report again, now up to date.
    settings.DB_READONLY_MAX_LAG_S = 30.0
    replica_sql("SELECT pg_wal_replay_resume()")
    wait_for(lambda: replica_sql("SELECT COUNT(*) FROM ledger_journal") == 3, 30, "the replica to catch up")
    cash, on_replica, on_primary = report_cash()
    assert cash == expected and on_replica and not on_primary, (cash, on_replica, on_primary)

    # 5. Admin list pages and the metrics gauges read the replica.
    client = Client()
    client.force_login(staff)
    with CaptureQueriesContext(connections["replica"]) as replica_queries:
        response = client.get("/admin/ledger/account/")
        assert response.status_code == 200, response.status_code
        assert b"replica-player@example.com" in response.content or b"user:" in response.content
    assert any("ledger_account" in q["sql"] for q in replica_queries.captured_queries), "admin list not on the replica"
    with CaptureQueriesContext(connections["replica"]) as replica_queries:
        exposition = generate_latest(REGISTRY).decode()
    assert "worker_runs" in exposition or "db_replica_lag_seconds" in exposition
    assert any("ops_workerrun" in q["sql"] for q in replica_queries.captured_queries), "gauges not read on the replica"
    with CaptureQueriesContext(connections["replica"]) as replica_queries:
        assert client.get(f"/admin/ledger/account/{account.pk}/change/").status_code == 200
    assert not any("ledger_account" in q["sql"] for q in replica_queries.captured_queries), (
        "a change page read the replica"
    )

    # 6. The replica stopped: reports, admin lists and gauges still answer, from the primary, and the metric says so.
    subprocess.run(shlex.split(os.environ["REPLICA_STOP_COMMAND"]), check=True, capture_output=True)  # noqa: S603
    before = fallbacks("unreachable")
    cash, _, on_primary = report_cash(replica_up=False)
    assert cash == expected and on_primary, (cash, on_primary)
    assert fallbacks("unreachable") > before
    assert client.get("/admin/ledger/account/").status_code == 200
    assert "db_replica_fallback_total" in generate_latest(REGISTRY).decode()
    print(f"fallbacks: lag {fallbacks('lag'):.0f}, unreachable {fallbacks('unreachable'):.0f}")
    print("replica scenario: PASS")


if __name__ == "__main__":
    main()
