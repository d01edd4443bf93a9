"""Processing stored webhook events: credit deposits, fail them, debit refunds and chargebacks, replay.

`webhook_event_process` (the Celery task, the admin's replay and the replay command all call it)
locks the event row, then the deposit row, and credits through the ledger once: the credit's
reference is derived from the provider and the PSP's payment reference, so neither a duplicate
delivery nor two different events about one payment can credit twice. A failed attempt is counted
by `webhook_event_record_error`; after the last one the event is `failed`, for an operator to replay.

A credit debits the stripe of its provider's clearing account that the player's id picks
(`webhooks.accounts`), so concurrent credits of one provider do not queue on one balance row; a refund or
chargeback credits the main clearing account `psp:<provider>`, as payouts do. The deposit row is read with
its player in one query (only the deposit's row is locked).

`webhook_event_credit_now` is the request's fast path for a plain confirmation (`webhooks.receiving`
calls it right after the event is stored): the same core as the worker, in its own short transaction,
taking every lock without waiting. See its docstring for what is plain and what goes to the worker.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ledger.currencies import get_currency
from ledger.errors import InsufficientFunds, LedgerError
from ledger.services import external_account, transfer, user_account
from ops.actors import Actor, SystemActor
from ops.audit import audit_record
from ops.tracing import flow_bind

from .accounts import deposit_clearing_account
from .errors import UnknownWebhookEvent
from .models import Deposit, Provider, WebhookEvent
from .notices import Kind, Notice, notice_for
from .selectors import deposit_matching

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str
    journal_reference: str = ""


_FINAL_STATUSES = frozenset({WebhookEvent.Status.PROCESSED, WebhookEvent.Status.FLAGGED, WebhookEvent.Status.IGNORED})


def _processed(reason: str, journal_reference: str = "") -> Outcome:
    return Outcome(WebhookEvent.Status.PROCESSED, reason, journal_reference)


def _flagged(reason: str, journal_reference: str = "") -> Outcome:
    return Outcome(WebhookEvent.Status.FLAGGED, reason, journal_reference)


# True while the request's fast path processes an event: the deposit row is then locked NOWAIT, not waited for.
_DEPOSIT_NOWAIT: ContextVar[bool] = ContextVar("deposit_nowait", default=False)


def _deposit_for_update(notice: Notice) -> Deposit | None:
    """Find and lock the deposit an event is about (by our reference, else by the PSP's ids); join its flow.

    Its player comes in the same query (`select_related`; only the deposit's row is locked, `of=self`):
    the credit reads the player's flags and opens their account.
    """
    locked = Deposit.objects.select_for_update(nowait=_DEPOSIT_NOWAIT.get(), of=("self",)).select_related("user")
    deposit = deposit_matching(notice, locked.filter(provider=notice.provider))
    if deposit is not None:
        flow_bind(deposit.flow_id)
    return deposit


def _fmt(amount_u: int | None, currency: str) -> str:
    try:
        return get_currency(currency).format(amount_u) if amount_u is not None else "no amount"
    except LedgerError:
        return f"{amount_u} {currency}"


def _credit(notice: Notice, event: WebhookEvent) -> Outcome:
    deposit = _deposit_for_update(notice)
    if deposit is None:
        return _flagged(
            f"No {notice.provider} deposit matches reference {notice.deposit_reference!r} / "
            f"payment {notice.psp_reference!r}; nothing credited."
        )
    event.deposit = deposit
    if not notice.psp_reference:
        return _flagged("The confirmation names no payment reference; nothing credited.")
    if notice.provider == Provider.STRIPE and deposit.psp_id and deposit.psp_id != notice.psp_reference:
        return _flagged(
            f"Payment {notice.psp_reference} is not this deposit's payment intent ({deposit.psp_id}); nothing credited."
        )
    merchant = settings.ADYEN_MERCHANT_ACCOUNT
    if notice.provider == Provider.ADYEN and merchant and event.payload.get("merchantAccountCode") != merchant:
        return _flagged(
            f"Confirmation for merchant account {event.payload.get('merchantAccountCode')!r}, "
            f"not ours ({merchant}); nothing credited."
        )
    if deposit.status == Deposit.Status.FAILED:
        return _flagged(
            f"Confirmation for deposit {deposit.reference}, which already failed "
            f"({deposit.failure_reason or 'no reason'}); nothing credited."
        )
    if notice.amount_u != deposit.amount_u or notice.currency != deposit.currency:
        return _flagged(
            f"Confirmed {_fmt(notice.amount_u, notice.currency)} but deposit {deposit.reference} is "
            f"{_fmt(deposit.amount_u, deposit.currency)}; nothing credited."
        )
    if deposit.status == Deposit.Status.CREDITED:
        if deposit.psp_payment_reference == notice.psp_reference:
            return _processed(
                f"Already credited (journal {notice.credit_reference}); nothing more.", notice.credit_reference
            )
        return _flagged(
            f"Deposit {deposit.reference} was already credited by payment "
            f"{deposit.psp_payment_reference}; this is payment {notice.psp_reference}. Nothing credited."
        )
    if deposit.user.is_staff or deposit.user.is_superuser:
        return _flagged(
            f"Deposit {deposit.reference} is for operator account {deposit.user.email}; operators hold "
            "no balance. Nothing credited: return the money through the PSP."
        )
    try:
        journal = transfer(
            source=deposit_clearing_account(
                provider=notice.provider, currency=deposit.currency, player_id=deposit.user_id
            ),
            destination=user_account(user=deposit.user, currency=deposit.currency),
            amount_u=deposit.amount_u,
            type="deposit",
            reference=notice.credit_reference,
            actor=SystemActor(f"webhook:{notice.provider}"),
            metadata={
                "deposit": deposit.reference,
                "provider": notice.provider,
                "psp_reference": notice.psp_reference,
                "webhook_event": event.pk,
            },
        )
    except LedgerError as exc:
        return _flagged(f"The ledger refused the credit ({exc.code}: {exc.detail}); nothing credited.")
    deposit.status = Deposit.Status.CREDITED
    deposit.journal = journal
    deposit.psp_payment_reference = notice.psp_reference
    deposit.credited_at = timezone.now()
    deposit.save(update_fields=["status", "journal", "psp_payment_reference", "credited_at", "updated_at"])
    audit_record(
        actor=SystemActor(f"webhook:{notice.provider}"),
        action="deposits.credit",
        obj=deposit,
        from_state=Deposit.Status.PENDING,
        to_state=Deposit.Status.CREDITED,
        data={
            "journal": journal.reference,
            "amount_u": deposit.amount_u,
            "currency": deposit.currency,
            "webhook_event": event.pk,
        },
    )
    verb = "Already credited" if journal.replayed else "Credited"
    return _processed(
        f"{verb} {_fmt(deposit.amount_u, deposit.currency)} (journal {journal.reference}).", journal.reference
    )


def _fail(notice: Notice, event: WebhookEvent) -> Outcome:
    deposit = _deposit_for_update(notice)
    if deposit is None:
        return _flagged(f"Failure notice for no known deposit ({notice.deposit_reference or notice.psp_reference}).")
    event.deposit = deposit
    if deposit.status == Deposit.Status.CREDITED:
        return _flagged(
            f"Failure notice ({notice.note}) for deposit {deposit.reference}, already credited; check with the PSP."
        )
    if deposit.status == Deposit.Status.FAILED:
        return _processed("Deposit already failed; nothing to do.")
    deposit.status = Deposit.Status.FAILED
    deposit.failure_reason = notice.note[:1000]
    deposit.save(update_fields=["status", "failure_reason", "updated_at"])
    audit_record(
        actor=SystemActor(f"webhook:{notice.provider}"),
        action="deposits.fail",
        obj=deposit,
        from_state=Deposit.Status.PENDING,
        to_state=Deposit.Status.FAILED,
        reason=notice.note,
        data={"webhook_event": event.pk},
    )
    return _processed(f"Deposit marked failed: {notice.note}.")


def _reverse(notice: Notice, event: WebhookEvent) -> Outcome:
    """A refund or chargeback: debit the player's available if it covers it, else flag for manual handling."""
    what = "Refund" if notice.kind == Kind.REFUND else "Chargeback"
    deposit = _deposit_for_update(notice)
    if deposit is None:
        return _flagged(f"{what} for no known deposit (payment {notice.psp_reference!r}); no money moved.")
    event.deposit = deposit
    if deposit.status != Deposit.Status.CREDITED:
        return _flagged(f"{what} for deposit {deposit.reference}, which is {deposit.status}; no money moved.")
    if notice.amount_u is None or notice.amount_u <= 0 or notice.currency != deposit.currency:
        return _flagged(
            f"{what} of {_fmt(notice.amount_u, notice.currency)} does not fit deposit "
            f"{deposit.reference}; no money moved."
        )
    amount_u = notice.amount_u - deposit.refunded_u if notice.cumulative else notice.amount_u
    if amount_u <= 0:
        return _flagged(
            f"{what}: {_fmt(notice.amount_u, notice.currency)} refunded in total, already debited; nothing more moved."
        )
    outstanding_u = deposit.amount_u - deposit.refunded_u - deposit.charged_back_u
    if amount_u > outstanding_u:
        return _flagged(
            f"{what} of {_fmt(amount_u, deposit.currency)} exceeds what remains of deposit "
            f"{deposit.reference} after earlier refunds and chargebacks "
            f"({_fmt(outstanding_u, deposit.currency)}); no money moved."
        )
    try:
        journal = transfer(
            source=user_account(user=deposit.user, currency=deposit.currency),
            destination=external_account(provider=notice.provider, currency=deposit.currency),
            amount_u=amount_u,
            type=f"deposit_{notice.kind}",
            reference=notice.reversal_reference,
            actor=SystemActor(f"webhook:{notice.provider}"),
            metadata={"deposit": deposit.reference, "webhook_event": event.pk, "kind": str(notice.kind)},
        )
    except InsufficientFunds:
        return _flagged(
            f"{what} of {_fmt(amount_u, deposit.currency)} on deposit {deposit.reference}: the player's "
            "available balance does not cover it. MANUAL HANDLING NEEDED; no money moved."
        )
    except LedgerError as exc:
        return _flagged(f"{what}: the ledger refused the debit ({exc.code}: {exc.detail}); no money moved.")
    if not journal.replayed:
        field = "refunded_u" if notice.kind == Kind.REFUND else "charged_back_u"
        Deposit.objects.filter(pk=deposit.pk).update(**{field: F(field) + amount_u})
        audit_record(
            actor=SystemActor(f"webhook:{notice.provider}"),
            action=f"deposits.{notice.kind}",
            obj=deposit,
            reason=f"{what} notified by {notice.provider}",
            data={"journal": journal.reference, "amount_u": amount_u, "webhook_event": event.pk},
        )
    return _flagged(
        f"{what}: debited {_fmt(amount_u, deposit.currency)} from the player's available "
        f"(journal {journal.reference}). Review with the PSP.",
        journal.reference,
    )


def _review(notice: Notice, event: WebhookEvent) -> Outcome:
    """A dispute outcome or refund reversal: record it against the deposit and flag it; move nothing."""
    deposit = _deposit_for_update(notice)
    event.deposit = deposit
    where = f"deposit {deposit.reference}" if deposit else "no known deposit"
    return _flagged(f"{notice.note} ({where}).")


_HANDLERS = {
    Kind.CREDIT: _credit,
    Kind.FAIL: _fail,
    Kind.REFUND: _reverse,
    Kind.CHARGEBACK: _reverse,
    Kind.REVIEW: _review,
}


def _event_apply(event: WebhookEvent, notice: Notice) -> None:
    """The core of processing, on an event row locked by the caller: run its handler, save its final status."""
    handler = _HANDLERS.get(notice.kind)
    outcome = handler(notice, event) if handler else Outcome(WebhookEvent.Status.IGNORED, notice.note)
    event.status = outcome.status
    event.reason = outcome.reason
    event.journal_reference = outcome.journal_reference or event.journal_reference
    event.attempts += 1
    event.last_error = ""
    event.processed_at = timezone.now()
    event.save(
        update_fields=["status", "reason", "journal_reference", "attempts", "last_error", "processed_at", "deposit"]
    )


def webhook_event_process(*, event_id: int, replay: bool = False) -> WebhookEvent:
    """Process one stored event to a final status; safe to run twice (processed events are no-ops).

    The automatic path processes `received` and `failed` events; a replay also re-examines a
    `flagged` one (after an operator fixed its cause). Money moves only through ledger references
    derived from the PSP's payment, so no path credits twice.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise UnknownWebhookEvent(f"No webhook event with id {event_id}.")
        open_statuses = {WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED}
        if replay:
            open_statuses.add(WebhookEvent.Status.FLAGGED)
        if event.status not in open_statuses:
            return event
        _event_apply(event, notice_for(event.provider, event.payload))
    if event.status == WebhookEvent.Status.FLAGGED:
        logger.warning("webhook event %s flagged: %s", event.pk, event.reason)
    return event


def _lock_timeout_local(timeout_ms: int) -> None:
    """Bound every lock wait of the current transaction (transaction-local, like SET LOCAL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{timeout_ms}ms"])


class _NotPlain(Exception):
    """Raised inside the fast path's transaction to roll it back: the worker takes the event instead."""


def webhook_event_credit_now(*, event_id: int) -> bool:
    """Credit a just-stored plain confirmation in the request, never waiting for a lock; return whether done.

    Plain means: a confirmation (`Kind.CREDIT`: a custody or simulated deposit, a Stripe
    `payment_intent.succeeded` or paid `checkout.session.completed`, an Adyen successful
    `AUTHORISATION`) of a deposit we know, whose processing ends `processed` (credited now, or
    already credited by the same payment). Everything else goes to the worker, unchanged: refunds,
    chargebacks, failures and review cases, a confirmation of no known deposit, and every confirmation
    the worker would flag (other amount, failed deposit, operator's account...): those are rolled back
    here and flagged there, with the same reason as before.

    The event row and the deposit row are locked with NOWAIT (the deposit by the worker's own core,
    `_deposit_for_update` under `_DEPOSIT_NOWAIT`: one query finds and locks it), and any other lock (the
    ledger's accounts) waits at most WEBHOOK_CREDIT_NOW_LOCK_TIMEOUT_MS: a request never queues behind a
    worker or an operator. A lock not granted, or any error, rolls this transaction back whole (no
    money moved, the event still `received`) and returns False: the caller enqueues the event as
    before, and the worker (or the sweeper, `retry_stale_events`) processes it. A failure here is
    not counted as an attempt: it is only a skipped shortcut.

    Exactly once: this runs the worker's own core (`_event_apply`) under the same event lock and the
    same state check (an event no longer `received` is never processed again; True if it reached a
    final status meanwhile), and the credit's ledger reference is unique per PSP payment.
    """
    try:
        with transaction.atomic():
            _lock_timeout_local(int(settings.WEBHOOK_CREDIT_NOW_LOCK_TIMEOUT_MS))
            event = WebhookEvent.objects.select_for_update(nowait=True).filter(pk=event_id).first()
            if event is None:
                raise UnknownWebhookEvent(f"No webhook event with id {event_id}.")
            if event.status != WebhookEvent.Status.RECEIVED:
                return event.status in _FINAL_STATUSES  # processed meanwhile: nothing to do, nothing to enqueue
            notice = notice_for(event.provider, event.payload)
            if notice.kind != Kind.CREDIT:
                return False
            nowait = _DEPOSIT_NOWAIT.set(True)
            try:
                _event_apply(event, notice)  # no known deposit: flagged, so rolled back below
            finally:
                _DEPOSIT_NOWAIT.reset(nowait)
            if event.status != WebhookEvent.Status.PROCESSED:
                raise _NotPlain(event.reason)
    except _NotPlain as exc:
        logger.info("webhook event %s left to the worker (not a plain confirmation: %s)", event_id, exc)
        return False
    except Exception as exc:  # a lock not granted at once, the database, a bug: the worker will retry it
        logger.warning("webhook event %s left to the worker (%s: %s)", event_id, type(exc).__name__, exc)
        return False
    logger.info("webhook event %s processed in the request: %s", event_id, event.reason)
    return True


def webhook_event_record_error(*, event_id: int, error: BaseException, final: bool) -> None:
    """Count a failed attempt; after the last one the event is `failed`, for an operator to replay."""
    values: dict[str, Any] = {"attempts": F("attempts") + 1, "last_error": f"{type(error).__name__}: {error}"[:2000]}
    if final:
        values["status"] = WebhookEvent.Status.FAILED
        values["processed_at"] = timezone.now()
    WebhookEvent.objects.filter(
        pk=event_id, status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED]
    ).update(**values)
    log = logger.error if final else logger.warning
    log("webhook event %s attempt failed%s: %s", event_id, " (last attempt)" if final else "", error)


def webhook_event_replay(*, event_id: int, acting_user: Actor, reason: str = "") -> WebhookEvent:
    """Re-process a stored event for an operator (idempotent), with an audit record."""
    with transaction.atomic():
        before = WebhookEvent.objects.filter(pk=event_id).values_list("status", flat=True).first()
        if before is None:
            raise UnknownWebhookEvent(f"No webhook event with id {event_id}.")
        event = webhook_event_process(event_id=event_id, replay=True)
        audit_record(
            actor=acting_user,
            action="webhooks.replay",
            obj=event,
            reason=reason or "replay",
            from_state=before,
            to_state=event.status,
            data={"provider": event.provider, "event_id": event.event_id, "result": event.reason},
        )
    return event
