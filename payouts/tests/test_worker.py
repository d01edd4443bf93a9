"""The canary loop with a real Celery worker on Redis: approval queues the payout after commit."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ops.models import WorkerRun
from payouts.models import Withdrawal
from payouts.tests.helpers import destination_for

from .helpers import balances, send_adyen_transfer

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the worker")


def test_approval_queues_the_payout_on_a_real_worker(
    stub: Any,
    celery_worker_on_redis: Any,
    funded_player: Any,
    finance: Any,
    api_client_for: Any,
    assert_ledger_ok: Any,
) -> None:
    before = balances(funded_player)
    created = (
        api_client_for(funded_player)
        .post(
            "/v1/withdrawals",
            {"amount_u": 10_000_000, "currency": "USDC", "provider": "adyen", "destination": destination_for("adyen")},
            format="json",
            HTTP_IDEMPOTENCY_KEY="worker-canary",
        )
        .json()
    )
    assert api_client_for(finance).post(f"/v1/withdrawals/{created['id']}/approve").status_code == 200

    wait_for(lambda: Withdrawal.objects.filter(pk=created["id"]).exclude(psp_reference="").exists())
    withdrawal = Withdrawal.objects.get(pk=created["id"])
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert stub.submissions(withdrawal.idempotency_key) == 1
    wait_for(lambda: WorkerRun.objects.filter(worker="payout", result="ok").exists())

    assert send_adyen_transfer(stub.objects("adyen_transfer")[0], "booked").json()["result"] == "paid"
    after = balances(funded_player)
    assert after.held_u == 0
    assert after.available_u == before.available_u - 10_000_000
    assert_ledger_ok()
