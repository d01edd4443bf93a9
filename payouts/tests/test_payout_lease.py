"""One PSP call in flight per payout (payouts/leases.py), counted in HTTP requests at the PSP stub.

Callers race on real PostgreSQL connections (threads): the payout worker, a Celery retry, the requeue's
resubmission and the reconciler's status call. Exactly one of them calls the PSP; the others see the lease
and make no call. A caller that dies with its lease (its database connection terminated during the PSP
call) blocks everyone until the lease expires; then exactly one caller takes it over and calls the PSP
again with the same idempotency key (the PSP replays: one payout), and the ledger stays whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from ledger.models import Journal
from ops.actors import SystemActor
from ops.tests.db_role_harness import as_db_owner
from payouts.metrics import payout_lease_metrics
from payouts.models import PayoutAttempt, Withdrawal
from payouts.reconciliation import payout_reconcile
from payouts.services import payout_submit, payouts_requeue, withdrawal_approve, withdrawal_request

from .helpers import balances, destination_for
from .test_concurrency import race

pytestmark = pytest.mark.django_db(transaction=True)

AMOUNT_U = 7_000_000
CALLERS = ("payout-worker", "payout-retry", "payout-requeue", "payout-worker")


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch, resumes: list[tuple[int, str, float]]) -> list[int]:
    """Approvals and the requeue commit here; record their payout messages instead of sending them."""
    sent: list[int] = []
    monkeypatch.setattr("payouts.services._enqueue_payout", sent.append)
    return sent


@pytest.fixture
def resumes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str, float]]:
    """The resumes scheduled at a lease's expiry (withdrawal, holder, seconds left), recorded instead of sent."""
    scheduled: list[tuple[int, str, float]] = []
    monkeypatch.setattr(
        "payouts.services._enqueue_payout_after_lease", lambda pk, owner, left_s: scheduled.append((pk, owner, left_s))
    )
    return scheduled


def _approved(player: Any, operator: Any) -> Withdrawal:
    withdrawal = withdrawal_request(
        user=player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    return withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=operator)


def _submitter(name: str) -> Callable[[int], Any]:
    return lambda pk: payout_submit(withdrawal_id=pk, acting_user=SystemActor(name))


def _submitters() -> list[Callable[[int], Any]]:
    return [_submitter(name) for name in CALLERS]


def _sample(name: str, **labels: str) -> float:
    for family in payout_lease_metrics():
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"no sample {name} {labels}")


def _statuses(results: list[Any]) -> list[str]:
    return sorted(str(getattr(r, "status", None) or getattr(r, "answer", repr(r))) for r in results)


def _die_mid_call(stub: Any, withdrawal_id: int) -> None:
    """A payout worker loses its database connection while its PSP call is in flight (killed, or a database
    restart): the PSP executed the payout and answers 0.4 s later; the worker never records it nor gives its
    lease back."""
    stub.set_mode("adyen_transfer", "timeout", times=1, delay=0.4)
    backend: list[int] = []
    died: list[BaseException] = []

    def doomed_worker() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend.append(cursor.fetchone()[0])
            payout_submit(withdrawal_id=withdrawal_id)
        except OperationalError as exc:  # its connection is gone when it comes back to record the answer
            died.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=doomed_worker)
    worker.start()
    deadline = time.monotonic() + 10
    while stub.calls() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stub.calls() == 1, "the first call never reached the PSP"
    with as_db_owner() as cursor:  # the backend logged in as the suite's owner (then became the app role)
        cursor.execute("SELECT pg_terminate_backend(%s)", backend)
    worker.join(10)
    assert died, "the worker should have lost its database connection"


def test_racing_callers_make_exactly_one_psp_call(
    stub: Any, funded_player: Any, finance: Any, queued: list[int], assert_ledger_ok: Any
) -> None:
    before = balances(funded_player)
    withdrawal = _approved(funded_player, finance)
    stub.set_mode("adyen_transfer", "timeout", delay=0.3)  # the PSP takes 0.3 s to answer (client timeout 0.5 s)

    results = race(
        *(lambda f=f: f(withdrawal.pk) for f in _submitters()),
        lambda: payout_reconcile(withdrawal_id=withdrawal.pk),
    )

    withdrawal.refresh_from_db()
    key = withdrawal.idempotency_key
    assert stub.calls() == 1, [(r.method, r.path) for r in stub.requests]  # every HTTP request the stub received
    assert stub.calls(key) == 1 and stub.submissions(key) == 1
    statuses = _statuses(results)
    assert statuses.count("accepted") == 1, statuses
    assert set(statuses) <= {"accepted", "in_flight", "nothing_to_do", "skipped"}, statuses
    assert withdrawal.attempts.count() == 1
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED and withdrawal.psp_reference
    assert withdrawal.payout_lease_owner == "" and withdrawal.payout_lease_until is None  # released
    after = balances(funded_player)
    assert (after.available_u, after.held_u) == (before.available_u - AMOUNT_U, AMOUNT_U)
    assert_ledger_ok()


@pytest.mark.parametrize("psp_has_it", [True, False], ids=["psp-has-it", "psp-lost-it"])
def test_a_dead_callers_lease_blocks_everyone_until_it_expires_then_one_takes_over_with_the_same_key(
    psp_has_it: bool,
    stub: Any,
    funded_player: Any,
    finance: Any,
    queued: list[int],
    resumes: list[tuple[int, str, float]],
    settings: Any,
    assert_ledger_ok: Any,
) -> None:
    settings.PAYOUT_PROVIDER_TIMEOUT_S = 0.5
    settings.PAYOUT_LEASE_MARGIN_S = 1.0  # lease: 3 calls x (connect + read) x 0.5 s + 1 s = 4 s
    before = balances(funded_player)
    withdrawal = _approved(funded_player, finance)
    _die_mid_call(stub, withdrawal.pk)

    withdrawal.refresh_from_db()
    key, dead_owner = withdrawal.idempotency_key, withdrawal.payout_lease_owner
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert dead_owner.startswith("payout-worker@")
    assert withdrawal.payout_lease_until is not None and withdrawal.payout_lease_until > timezone.now()
    assert list(withdrawal.attempts.values_list("outcome", flat=True)) == [PayoutAttempt.Outcome.PENDING]

    # While the lease lives: the requeue queues nothing (it schedules a resume at the lease's expiry, for
    # that holder only), the reconciler and every submitter call nothing.
    queued.clear()  # (the approval's message)
    assert payouts_requeue(older_than_s=0) == [] and queued == []
    assert [(pk, owner) for pk, owner, _ in resumes] == [(withdrawal.pk, dead_owner)]
    assert 0 < resumes[0][2] <= 4.0
    results = race(
        *(lambda f=f: f(withdrawal.pk) for f in _submitters()),
        lambda: payout_reconcile(withdrawal_id=withdrawal.pk),
    )
    assert _statuses(results) == ["in_flight"] * len(CALLERS) + ["skipped"]
    assert stub.calls() == 1 and withdrawal.attempts.count() == 1

    # Once it has expired (by the database's clock) the requeue sees the work, and exactly one caller takes it.
    while Withdrawal.objects.filter(pk=withdrawal.pk, payout_lease_until__gt=timezone.now()).exists():
        time.sleep(0.1)
    assert payouts_requeue(older_than_s=0) == [withdrawal.pk]
    if not psp_has_it:
        stub.reset()  # the cut-off call never reached the PSP after all
    results = race(*(lambda f=f: f(withdrawal.pk) for f in _submitters()))
    statuses = _statuses(results)
    assert statuses.count("accepted") == 1, statuses
    assert set(statuses) <= {"accepted", "in_flight", "nothing_to_do"}, statuses
    # The one caller that took the lease asked the PSP first (by our key: we never learnt its id) ...
    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in stub.requests]
    taken = withdrawal.attempts.order_by("id").last()
    assert taken is not None and taken.took_over_from == dead_owner and taken.idempotency_key == key
    assert taken.outcome == PayoutAttempt.Outcome.ACCEPTED
    if psp_has_it:  # ... found it there, and did not send it again: one submission POST in all
        assert calls == [("POST", "transfers"), ("GET", "transfers")], calls
        assert "not submitted again" in taken.detail
    else:  # ... found nothing, and sent it again with the same key: the PSP executes it once
        assert calls == [("GET", "transfers"), ("POST", "transfers")], calls
        assert stub.calls(key) == 1
    assert stub.submissions(key) == 1
    assert _sample("payout_lease_takeovers_total", provider="adyen") == 1

    # The PSP pays; reconciliation (under the lease too) finishes it: money burned once, ledger whole.
    for obj in stub.objects("adyen_transfer"):
        stub.set_object_status(obj["id"], "booked")
    assert payout_reconcile(withdrawal_id=withdrawal.pk).answer == "paid"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID and withdrawal.payout_lease_owner == ""
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").count() == 1
    after = balances(funded_player)
    assert (after.available_u, after.held_u) == (before.available_u - AMOUNT_U, 0)
    assert_ledger_ok()


def test_a_caller_stalled_past_its_lease_does_not_call(
    stub: Any, funded_player: Any, finance: Any, queued: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    withdrawal = _approved(funded_player, finance)
    monkeypatch.setattr("payouts.services.lease_left_s", lambda lease, provider: -1.0)
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "error" and run.retryable
    assert stub.calls() == 0
    withdrawal.refresh_from_db()
    assert withdrawal.payout_lease_owner == ""  # given back: the next run may call
    assert list(withdrawal.attempts.values_list("outcome", flat=True)) == [PayoutAttempt.Outcome.ERROR]
    monkeypatch.undo()
    queued.clear()
    monkeypatch.setattr("payouts.services._enqueue_payout", queued.append)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    assert stub.calls(withdrawal.idempotency_key) == 1


@pytest.mark.worker
def test_on_a_real_worker_the_original_task_the_requeue_and_a_retry_at_once_call_the_psp_once(
    stub: Any, funded_player: Any, finance: Any, settings: Any, celery_worker_on_redis: Any, assert_ledger_ok: Any
) -> None:
    """The issue's race: the task queued by the approval, the requeue's message and a retry run together."""
    from ops.models import WorkerRun
    from ops.tests.processes import wait_until
    from payouts.tasks import requeue_payouts, submit_payout

    settings.PAYOUT_PROVIDER_TIMEOUT_S = 3.0
    stub.set_mode("adyen_transfer", "timeout", delay=1.5)  # the PSP takes 1.5 s to answer
    before = balances(funded_player)
    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)  # queues the payout task on commit
    # As if approved a minute ago with its message lost, as far as the requeue can tell: it queues it too.
    Withdrawal.objects.filter(pk=withdrawal.pk).update(state_changed_at=timezone.now() - timedelta(minutes=1))
    requeue_payouts.delay()
    submit_payout.delay(withdrawal.pk)

    def runs() -> list[str]:
        return list(
            WorkerRun.objects.filter(worker="payout", detail__withdrawal_id=withdrawal.pk).values_list(
                "detail__status", flat=True
            )
        )

    wait_until(lambda: WorkerRun.objects.filter(worker="payout_requeue").exists(), 30, "the requeue to run")
    requeued = withdrawal.pk in WorkerRun.objects.get(worker="payout_requeue").detail["queued"]
    expected = 2 + int(requeued)
    wait_until(lambda: len(runs()) == expected, 30, f"{expected} payout runs")
    statuses = sorted(str(s) for s in runs())
    assert statuses.count("accepted") == 1, statuses
    assert set(statuses) <= {"accepted", "in_flight", "nothing_to_do"}, statuses

    withdrawal.refresh_from_db()
    key = withdrawal.idempotency_key
    assert stub.calls() == 1 and stub.calls(key) == 1 and stub.submissions(key) == 1, statuses
    assert withdrawal.attempts.count() == 1 and withdrawal.payout_lease_owner == ""
    for obj in stub.objects("adyen_transfer"):
        stub.set_object_status(obj["id"], "booked")
    assert payout_reconcile(withdrawal_id=withdrawal.pk).answer == "paid"
    after = balances(funded_player)
    assert (after.available_u, after.held_u) == (before.available_u - AMOUNT_U, 0)
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").count() == 1
    assert_ledger_ok()


@pytest.mark.worker
def test_a_payout_whose_worker_died_mid_call_is_paid_after_its_lease_expires_without_an_operator(
    stub: Any,
    funded_player: Any,
    finance: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    celery_worker_on_redis: Any,
    assert_ledger_ok: Any,
) -> None:
    """The fault drill's scenario 1, on a real worker: the worker dies mid-call, its message with it; nobody
    comes back by chance (no retry, no redelivery, the requeue waits PAYOUT_REQUEUE_AFTER_S). The requeue's
    run while the lease lives schedules a resume at its expiry; the resume takes the lease over, asks the
    PSP (which has it: no second submission) and the payout is paid, one PSP call per attempt."""
    from ops.tests.processes import wait_until
    from payouts.tasks import requeue_payouts

    settings.PAYOUT_PROVIDER_TIMEOUT_S = 0.5
    settings.PAYOUT_LEASE_MARGIN_S = 1.0  # lease: 3 calls x (connect + read) x 0.5 s + 1 s = 4 s
    assert settings.PAYOUT_REQUEUE_AFTER_S >= 30  # production's: the requeue alone would not come back for 30 s
    before = balances(funded_player)
    with monkeypatch.context() as m:
        m.setattr("payouts.services._enqueue_payout", lambda pk: None)  # its message dies with the worker
        withdrawal = _approved(funded_player, finance)
    _die_mid_call(stub, withdrawal.pk)
    withdrawal.refresh_from_db()
    key, dead_owner, until = withdrawal.idempotency_key, withdrawal.payout_lease_owner, withdrawal.payout_lease_until
    assert until is not None and until > timezone.now()

    requeue_payouts.delay()  # beat's next run, while the dead worker's lease still lives

    def answered() -> bool:
        return withdrawal.attempts.filter(outcome=PayoutAttempt.Outcome.ACCEPTED).exists()

    wait_until(answered, 15, "the payout to be resumed after its lease expired")
    taken = withdrawal.attempts.get(outcome=PayoutAttempt.Outcome.ACCEPTED)
    assert taken.took_over_from == dead_owner and taken.idempotency_key == key
    assert until < taken.started_at < until + timedelta(seconds=5)  # soon after the expiry, never before
    assert "not submitted again" in taken.detail  # it asked the PSP first
    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in stub.requests]
    assert calls == [("POST", "transfers"), ("GET", "transfers")], calls
    assert stub.calls(key) <= withdrawal.attempts.filter(idempotency_key=key).count() == 2
    assert stub.submissions(key) == 1 and stub.call_stats()[key]["max_in_flight"] == 1

    for obj in stub.objects("adyen_transfer"):
        stub.set_object_status(obj["id"], "booked")
    assert payout_reconcile(withdrawal_id=withdrawal.pk).answer == "paid"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID and withdrawal.payout_lease_owner == ""
    assert Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").count() == 1
    after = balances(funded_player)
    assert (after.available_u, after.held_u) == (before.available_u - AMOUNT_U, 0)
    assert_ledger_ok()


def test_a_resume_after_a_lease_its_holder_gave_back_makes_no_call(
    stub: Any, funded_player: Any, finance: Any, queued: list[int]
) -> None:
    """The holder lived: it got no answer (a timeout), recorded it and released its lease. The resume scheduled
    for its lease's expiry does nothing; the holder's own retry (its backoff) resubmits, not the resume."""
    withdrawal = _approved(funded_player, finance)
    stub.set_mode("adyen_transfer", "timeout", times=1, delay=1.5)  # longer than the client's 0.5 s
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "ambiguous"
    holder = withdrawal.attempts.get().lease_owner
    assert holder and stub.calls() == 1
    run = payout_submit(withdrawal_id=withdrawal.pk, after_lease_of=holder)
    assert run.status == "nothing_to_do" and "gave its lease back" in run.detail
    assert stub.calls() == 1 and withdrawal.attempts.count() == 1


def test_a_caller_that_finds_the_lease_held_schedules_a_resume_at_its_expiry(
    stub: Any, funded_player: Any, finance: Any, queued: list[int], resumes: list[tuple[int, str, float]]
) -> None:
    from payouts.tasks import submit_payout

    withdrawal = _approved(funded_player, finance)
    until = timezone.now() + timedelta(seconds=20)
    Withdrawal.objects.filter(pk=withdrawal.pk).update(
        payout_lease_owner="payout-worker@elsewhere", payout_lease_until=until
    )
    assert submit_payout.apply(args=[withdrawal.pk]).get() == "in_flight"
    assert stub.calls() == 0
    assert [(pk, owner) for pk, owner, _ in resumes] == [(withdrawal.pk, "payout-worker@elsewhere")]
    assert 15 < resumes[0][2] <= 20
    # The resume, early (clocks): that holder still has it, so it schedules itself again; never a call.
    assert submit_payout.apply(args=[withdrawal.pk], kwargs={"after_lease_of": "payout-worker@elsewhere"}).get() == (
        "in_flight"
    )
    assert len(resumes) == 2 and stub.calls() == 0
    # Once it expired, the resume takes it over and submits: one call.
    Withdrawal.objects.filter(pk=withdrawal.pk).update(payout_lease_until=timezone.now() - timedelta(seconds=1))
    assert submit_payout.apply(args=[withdrawal.pk], kwargs={"after_lease_of": "payout-worker@elsewhere"}).get() == (
        "accepted"
    )
    withdrawal.refresh_from_db()
    assert stub.calls() == 1 and stub.submissions(withdrawal.idempotency_key) == 1
