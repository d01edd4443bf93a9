"""Recovery within a minute: the broker stops for 30 s while signed webhooks arrive, then comes back.

Everything runs as it does in production, in processes of the test's own: a Redis server on a free port
(never the machine's shared one), the web server (`manage.py runserver`) and a Celery worker with its
embedded beat (restarted if it exits, as the deployment's supervisor does: `ops.tests.processes.Supervised`), both on that Redis and on the test database. Webhooks are signed custody deposits sent over
HTTP. After Redis returns (empty: the worst case, every message sent before the outage is gone too) every
event must be credited exactly once within 60 s. A withdrawal an operator approved during the outage (its
payout message lost) must reach the PSP stub within 60 s too, once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from ledger.models import Journal
from ops.tests.processes import (
    OwnRedis,
    Supervised,
    django_env,
    free_port,
    start_web,
    start_worker,
    stop,
    wait_until,
)
from payouts.tests.helpers import destination_for
from webhooks.models import Deposit, WebhookEvent
from webhooks.stub import PSPStub, custody_request

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

OUTAGE_S = 30
RECOVERY_LIMIT_S = 60


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Own Redis, web server and worker + embedded beat, all on the test database."""
    redis_server = OwnRedis()
    redis_server.start()
    psp = PSPStub(timeout_delay=2.0).start()
    # Crediting in the request is off: every deposit takes the queue, the path an outage puts at risk (a
    # plain confirmation credited in its request needs no broker: test_credit_in_request.py).
    env = django_env(
        redis_url=redis_server.url, ADYEN_API_BASE=psp.url, STRIPE_API_BASE=psp.url, WEBHOOK_CREDIT_IN_REQUEST="false"
    )
    web_port = free_port()
    logs = [open(tmp_path / name, "w") for name in ("web.log", "worker.log")]  # noqa: SIM115
    web = start_web(env, logs[0], web_port)
    worker = Supervised(
        lambda: start_worker(
            env, logs[1], "-B", "--pool", "threads", "--concurrency", "4", "--schedule", str(tmp_path / "beat-schedule")
        )
    ).start()
    url = f"http://127.0.0.1:{web_port}"

    def web_answers() -> bool:
        try:
            return requests.get(f"{url}/health/live", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(web_answers, 30, "the web server")
        yield {"url": url, "redis": redis_server, "psp": psp, "logs": tmp_path, "worker": worker}
    finally:
        worker.stop()
        stop(web)
        redis_server.stop()
        psp.stop()
        for log in logs:
            log.close()


def test_every_webhook_is_credited_once_within_60s_of_the_broker_returning(
    stack: dict[str, Any], player: Any, fund: Any, make_staff: Any
) -> None:
    from accounts.tests.factories import PASSWORD
    from payouts.models import Withdrawal
    from payouts.services import withdrawal_request

    fund(player, 50_000_000)
    withdrawal = withdrawal_request(
        user=player, amount_u=20_000_000, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    operator = make_staff(role="finance")
    sent: list[int] = []

    def deliver(n: int) -> None:
        payload = {
            "reference": f"outage-{n}",
            "user_id": str(player.public_id),
            "amount_u": 1_000_000 + n,
            "currency": "USDC",
        }
        signed = custody_request(payload, settings.CUSTODY_WEBHOOK_KEY)
        response = requests.post(
            f"{stack['url']}/webhooks/deposits", data=signed.body, headers=signed.headers, timeout=30
        )
        assert response.status_code < 300, response.text  # stored and acknowledged, broker or not
        sent.append(1_000_000 + n)

    def all_credited() -> bool:
        return Deposit.objects.filter(status=Deposit.Status.CREDITED).count() == len(sent)

    for n in range(3):  # the stack works before the outage
        deliver(n)
    wait_until(all_credited, 30, "the first deposits to be credited")

    stack["redis"].stop()
    outage_started = time.monotonic()
    n = 3
    while time.monotonic() - outage_started < OUTAGE_S:
        deliver(n)
        n += 1
        time.sleep(2)
        if n == 8:  # mid-outage, an operator approves over HTTP: the payout message cannot be sent
            login = requests.post(
                f"{stack['url']}/v1/auth/login", json={"email": operator.email, "password": PASSWORD}, timeout=30
            )
            approve = requests.post(
                f"{stack['url']}/v1/withdrawals/{withdrawal.pk}/approve",
                timeout=30,
                headers={"Authorization": f"Token {login.json()['token']}"},
            )
            assert approve.status_code == 200, approve.text
    during = n - 3
    assert during >= 10
    assert Withdrawal.objects.get(pk=withdrawal.pk).state == "approved" and not stack["psp"].requests
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED).count() == during
    stack["redis"].start()

    returned = time.monotonic()
    recovery_s = wait_until(all_credited, RECOVERY_LIMIT_S, "every event to be credited after the broker returned")
    print(
        f"broker outage {OUTAGE_S}s, {during} webhooks meanwhile: all credited {recovery_s:.1f}s after its return "
        f"(worker restarted by its supervisor {stack['worker'].restarts} times)"
    )

    def payout_accepted() -> bool:
        return Withdrawal.objects.filter(pk=withdrawal.pk).exclude(psp_reference="").exists()

    wait_until(
        payout_accepted,
        max(1.0, RECOVERY_LIMIT_S - (time.monotonic() - returned)),
        "the payout approved during the outage to reach the PSP",
    )
    payout_s = time.monotonic() - returned
    print(f"payout approved during the outage accepted by the PSP {payout_s:.1f}s after the broker returned")
    refreshed = Withdrawal.objects.get(pk=withdrawal.pk)
    assert refreshed.state == "payout_submitted" and stack["psp"].submissions(refreshed.idempotency_key) == 1

    assert WebhookEvent.objects.count() == len(sent)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookEvent.Status.PROCESSED}
    journals = set(Deposit.objects.values_list("journal_id", flat=True))
    assert None not in journals and len(journals) == len(sent)
    assert Journal.objects.filter(pk__in=journals).count() == len(sent)
    from payouts.tests.helpers import balances

    assert balances(player).available_u == 50_000_000 - 20_000_000 + sum(sent)  # each credited exactly once
