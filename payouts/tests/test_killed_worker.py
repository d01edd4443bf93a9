"""A payout worker killed with two PSP calls in flight: seen by the detector, finished by reconciliation.

A real Celery worker process (prefork) submits two payouts (Adyen and Stripe) to the PSP stub, which takes
them and holds its answers; the worker is killed (SIGKILL, the whole process group) while both requests are
held. Then, with no operator: the detector reports both within its threshold; reconciliation asks nothing while
the dead worker's leases live, then asks the PSP (the beat task) and finishes them once the PSP says paid. The
stub executed one submission per key.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ledger.models import Journal
from payouts.models import PayoutAttempt, Withdrawal
from payouts.reconciliation import payouts_reconcile
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request
from payouts.tasks import reconcile_payouts
from payouts.tests.helpers import destination_for
from webhooks.stub import PSPStub

from .helpers import balances

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

AMOUNT_U = 10_000_000


def _forget_unacked(broker_url: str) -> None:
    """Drop the killed worker's unacknowledged messages (acks_late) from this test's broker database.

    Redis would hand them to the next worker after its visibility timeout, perhaps a later test's worker
    whose database reuses these withdrawal ids.
    """
    import redis

    redis.Redis.from_url(broker_url).delete("unacked", "unacked_index", "unacked_mutex")


def detector() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("detect_stuck_finance_jobs", stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_worker_killed_during_psp_calls_is_detected_and_reconciled(
    funded_player: Any, finance: Any, settings: Any, tmp_path: Path, assert_ledger_ok: Any
) -> None:
    from config.celery_app import app
    from ops.tests.processes import django_env, start_worker, stop, wait_until

    before = balances(funded_player)
    with PSPStub(timeout_delay=60.0) as psp, open(tmp_path / "worker.log", "w") as log:
        settings.ADYEN_API_BASE = settings.STRIPE_API_BASE = psp.url
        psp.set_mode("*", "timeout")  # executed and stored at once; the answer is held back
        app.control.purge()
        env = django_env(
            redis_url=settings.CELERY_BROKER_URL,
            ADYEN_API_BASE=psp.url,
            STRIPE_API_BASE=psp.url,
            PAYOUT_LEASE_MARGIN_S="1",  # its leases: 3 calls x (connect + read) x 5 s + 1 s = 31 s
        )
        worker = start_worker(env, log, "--pool", "prefork", "--concurrency", "2")
        try:
            withdrawals = []
            for provider in ("adyen", "stripe"):
                w = withdrawal_request(
                    user=funded_player,
                    amount_u=AMOUNT_U,
                    currency="USDC",
                    provider=provider,
                    destination=destination_for(provider),
                )
                withdrawals.append(withdrawal_approve(withdrawal_id=w.pk, acting_user=finance))  # queued on commit
            wait_until(
                lambda: len([r for r in psp.requests if r.method == "POST"]) == 2,
                30,
                "both payout calls to reach the PSP",
            )
        finally:
            stop(worker, kill=True)  # SIGKILL while the PSP holds both answers
            _forget_unacked(settings.CELERY_BROKER_URL)
        assert worker.returncode is not None

        keys = {}
        for w in withdrawals:
            w.refresh_from_db()
            assert w.state == Withdrawal.State.PAYOUT_SUBMITTED and w.psp_reference == ""  # no answer recorded
            assert list(w.attempts.values_list("outcome", flat=True)) == [PayoutAttempt.Outcome.PENDING]
            keys[w.pk] = w.idempotency_key

        # The detector: silent inside its threshold (5 minutes by default), reports both past it, exits 1.
        assert detector() == (0, "")
        Withdrawal.objects.filter(pk__in=keys).update(state_changed_at=timezone.now() - timedelta(minutes=5, seconds=5))
        code, report = detector()
        assert code == 1
        for pk in keys:
            assert f"withdrawal {pk} state=payout_submitted" in report
        assert report.count("in flight: no answer from the PSP") == 2

        # The dead worker's leases (payouts/leases.py) live on: its calls might still be running, so
        # reconciliation asks the PSP nothing until they expire (the rail's call budget + the margin).
        asked = len(psp.requests)
        assert {r.answer for r in payouts_reconcile(older_than_s=0)} == {"skipped"}
        assert len(psp.requests) == asked
        wait_until(
            lambda: not Withdrawal.objects.filter(pk__in=keys, payout_lease_until__gt=timezone.now()).exists(),
            60,
            "the dead worker's leases to expire",
        )

        # Beat's reconciliation asks the PSP (by our key: we never learnt its ids). Not final yet: nothing moves.
        assert reconcile_payouts() == 2
        assert set(Withdrawal.objects.filter(pk__in=keys).values_list("state", flat=True)) == {"payout_submitted"}
        assert balances(funded_player).held_u == 2 * AMOUNT_U
        # Stripe Connect: the transfer reached the player's account, its payout was never asked for (the worker
        # died first); reconciliation saw it half done (pending). The worker's retry, same keys, finishes it.
        psp.set_mode("*", "ok")
        stripe_pk = next(w.pk for w in withdrawals if w.provider == "stripe")
        assert psp.objects("stripe_payout") == []
        assert payout_submit(withdrawal_id=stripe_pk).status == "accepted"
        assert len(psp.objects("stripe_transfer")) == 1  # the transfer was replayed, not made twice
        # The PSP pays both; the next reconciliation finishes them, without an operator.
        for obj in psp.objects("adyen_transfer"):
            psp.set_object_status(obj["id"], "booked")
        for obj in psp.objects("stripe_payout"):
            psp.set_object_status(obj["id"], "paid")
        assert reconcile_payouts() == 2

        for pk, key in keys.items():
            assert Withdrawal.objects.get(pk=pk).state == Withdrawal.State.PAID
            assert psp.submissions(key) == 1  # one payout per key at the PSP
            assert Journal.objects.filter(reference=f"withdrawal:{pk}:payout").count() == 1
    after = balances(funded_player)
    assert after.held_u == 0 and after.available_u == before.available_u - 2 * AMOUNT_U
    assert detector() == (0, "")
    assert_ledger_ok()
