"""Writes of the deposits app: starting deposits, storing verified webhook events, processing them.

The flow (DESIGN.md §5): a view verifies the signature on the raw body, a `*_receive` service stores
the raw event (unique per provider and event id) and enqueues its processing after commit, and
`webhook_event_process` (the Celery task, the admin's replay and the replay command all call it)
locks the event row, then the deposit row, and credits through the ledger once: the credit's
reference is derived from the provider and the PSP's payment reference, so neither a duplicate
delivery nor two different events about one payment can credit twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ledger.currencies import get_currency
from ledger.errors import InsufficientFunds, LedgerError
from ledger.services import external_account, transfer, user_account
from ops.actors import Actor, SystemActor, require_player
from ops.audit import audit_record
from ops.db_guard import service_write_allow
from ops.tracing import flow_bind
from ops.validation import amount_u_check

from .errors import (
    DepositProviderFailed,
    InvalidAmount,
    InvalidPayload,
    ReferenceMismatch,
    UnknownCurrency,
    UnknownUser,
    UnknownWebhookEvent,
    UnsupportedCurrency,
    UnsupportedProvider,
)
from .models import Deposit, Provider, WebhookEvent
from .notices import (
    Kind,
    Notice,
    adyen_event_id,
    adyen_notice,
    event_reference,
    notice_for,
    stripe_notice,
)
from .providers import PSP_CURRENCIES, ProviderCallFailed, payment_start

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

MAX_REFERENCE_LENGTH = 150
SIGNED_DEPOSIT_PROVIDERS = (Provider.CUSTODY, Provider.SIMULATION)
KEPT_HEADERS = ("Content-Type", "User-Agent", "Stripe-Signature", "X-Webhook-Signature", "X-Forwarded-For")


# --- Helpers -------------------------------------------------------------------------------------


def payload_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON of a payload (key order and spacing do not matter)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def selected_headers(headers: Any) -> dict[str, str]:
    """Keep the few request headers worth storing with an event."""
    return {name: str(headers[name])[:500] for name in KEPT_HEADERS if name in headers}


def _send_to_worker(event_id: int) -> None:
    from .tasks import process_webhook_event

    process_webhook_event.delay(event_id)


def _enqueue(event_id: int) -> None:
    """Hand the event to the worker once the transaction that stored it commits.

    If the broker is down the event stays `received`, and `retry_stale_events` picks it up later.
    """
    # A plain function, not functools.partial: Django logs a failed robust callback by its __qualname__.
    transaction.on_commit(lambda: _send_to_worker(event_id), robust=True)


def _amount(value: Any, *, allow_zero: bool = False) -> int:
    return amount_u_check(value, error=InvalidAmount, allow_zero=allow_zero)


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise UnknownCurrency(f"Unknown currency {value!r}.")
    try:
        return get_currency(value).code
    except LedgerError:
        raise UnknownCurrency(f"Unknown currency {value!r}.") from None


def _player(value: Any) -> Any:
    try:
        public_id = uuid.UUID(str(value)) if isinstance(value, str | uuid.UUID) else None
    except ValueError:
        public_id = None
    if public_id is None:
        raise InvalidPayload(f"user_id must be a player's UUID, not {value!r}.")
    user = get_user_model().objects.filter(public_id=public_id, is_active=True).first()
    if user is None:
        raise UnknownUser(f"No active player with id {public_id}; nothing was stored or credited.")
    return user


# --- Starting a deposit --------------------------------------------------------------------------


def deposit_start(*, user: User, provider: str, amount_u: int, currency: str, return_url: str = "") -> Deposit:
    """Create a pending deposit and start its payment with the PSP (idempotency key = our reference).

    No money moves here: the credit comes with the provider's confirmation webhook. The deposit row
    commits first, then the PSP is called with no transaction open (the view is
    `@idempotent(atomic=False)`). If the PSP fails, the deposit is marked failed and
    `DepositProviderFailed` (502) is raised; the Idempotency-Key is released so the player may retry.
    """
    require_player(user)
    if provider not in PSP_CURRENCIES:
        raise UnsupportedProvider(f"Deposits go through one of {', '.join(sorted(PSP_CURRENCIES))}, not {provider!r}.")
    currency = _currency(currency)
    if currency not in PSP_CURRENCIES[provider]:
        raise UnsupportedCurrency(
            f"{provider} takes {', '.join(sorted(PSP_CURRENCIES[provider]))}; {currency} is not offered."
        )
    amount_u = _amount(amount_u)
    with transaction.atomic():
        deposit = Deposit.objects.create(
            provider=provider, reference=str(uuid.uuid4()), user=user, amount_u=amount_u, currency=currency
        )
        audit_record(
            actor=user,
            action="deposits.start",
            obj=deposit,
            to_state=deposit.status,
            data={"provider": provider, "amount_u": amount_u, "currency": currency, "reference": deposit.reference},
        )
    try:
        started = payment_start(deposit=deposit, return_url=return_url)
    except ProviderCallFailed as exc:
        Deposit.objects.filter(pk=deposit.pk, status=Deposit.Status.PENDING).update(
            status=Deposit.Status.FAILED, failure_reason=exc.detail
        )
        logger.warning("deposit %s: %s", deposit.reference, exc.detail)
        raise DepositProviderFailed(
            f"The payment provider could not start this deposit ({provider}); nothing was charged. Retry later."
        ) from exc
    Deposit.objects.filter(pk=deposit.pk).update(psp_id=started.psp_id, psp_client_data=started.client_data)
    deposit.refresh_from_db()
    return deposit


# --- Receiving verified events -------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A stored event, and whether this delivery was a duplicate of one stored before."""

    event: WebhookEvent
    duplicate: bool


def _store(
    *,
    provider: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    raw_body: bytes = b"",
    status: str = WebhookEvent.Status.RECEIVED,
    reason: str = "",
    enqueue: bool = True,
    deposit_fields: dict[str, Any] | None = None,
) -> Received:
    """Insert the event once per (provider, event id); a later delivery returns the stored row."""
    digest = payload_hash(payload)
    try:
        with transaction.atomic():
            deposit = Deposit.objects.create(provider=provider, **deposit_fields) if deposit_fields else None
            event = WebhookEvent.objects.create(
                provider=provider,
                event_id=event_id[:200],
                event_type=event_type[:100],
                reference=event_reference(provider, payload)[:200],
                payload_hash=digest,
                payload=payload,
                raw_body=raw_body.decode("utf-8", "replace"),
                headers=headers,
                status=status,
                reason=reason,
                deposit=deposit,
                processed_at=timezone.now() if status != WebhookEvent.Status.RECEIVED else None,
            )
            if enqueue and status == WebhookEvent.Status.RECEIVED:
                _enqueue(event.pk)
    except IntegrityError:
        existing = WebhookEvent.objects.filter(provider=provider, event_id=event_id[:200]).first()
        if existing is None:
            raise
        if provider in SIGNED_DEPOSIT_PROVIDERS and existing.payload_hash != digest:
            raise ReferenceMismatch(
                f"Reference {event_id!r} was already received with a different payload; nothing was credited. "
                "Retry only with the same payload for the same reference.",
                extra={"reference": event_id},
            ) from None
        return Received(existing, duplicate=True)
    return Received(event, duplicate=False)


def stripe_event_receive(*, event: dict[str, Any], headers: dict[str, str], raw_body: bytes = b"") -> Received:
    """Store a verified Stripe event; a type we do not handle is stored as ignored."""
    notice = stripe_notice(event)
    ignored = notice.kind == Kind.IGNORE
    _join_deposit_flow(notice)
    return _store(
        provider=Provider.STRIPE,
        event_id=event["id"],
        event_type=str(event.get("type", "")),
        payload=event,
        headers=headers,
        raw_body=raw_body,
        status=WebhookEvent.Status.IGNORED if ignored else WebhookEvent.Status.RECEIVED,
        reason=notice.note if ignored else "",
    )


def adyen_notification_receive(
    *, items: list[dict[str, Any]], headers: dict[str, str], raw_body: bytes = b""
) -> list[Received]:
    """Store each verified Adyen notification item as its own event, all in one transaction."""
    received = []
    with transaction.atomic():
        for item in items:
            notice = adyen_notice(item)
            ignored = notice.kind == Kind.IGNORE
            _join_deposit_flow(notice)
            received.append(
                _store(
                    provider=Provider.ADYEN,
                    event_id=adyen_event_id(item),
                    event_type=str(item.get("eventCode", "")),
                    payload=item,
                    headers=headers,
                    raw_body=raw_body,
                    status=WebhookEvent.Status.IGNORED if ignored else WebhookEvent.Status.RECEIVED,
                    reason=notice.note if ignored else "",
                )
            )
    return received


@dataclass(frozen=True)
class SignedDeposit:
    """A validated custody (or simulated) deposit."""

    reference: str
    user: Any
    amount_u: int
    currency: str


def signed_deposit_validate(payload: dict[str, Any]) -> SignedDeposit:
    """Check a custody deposit's fields: reference, player, positive integer amount, known currency."""
    unknown = sorted(set(payload) - {"reference", "user_id", "amount_u", "currency"})
    if unknown:
        raise InvalidPayload(f"Unexpected fields: {', '.join(unknown)}.")
    reference = payload.get("reference")
    if not isinstance(reference, str) or not reference.strip() or len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidPayload(f"reference must be a string of 1 to {MAX_REFERENCE_LENGTH} characters.")
    if "amount_u" not in payload:
        raise InvalidAmount("amount_u is required.")
    amount_u = _amount(payload["amount_u"])
    currency = _currency(payload.get("currency"))
    user = _player(payload.get("user_id"))
    return SignedDeposit(reference=reference, user=user, amount_u=amount_u, currency=currency)


def signed_deposit_receive(
    *, provider: str, payload: dict[str, Any], headers: dict[str, str], raw_body: bytes = b"", enqueue: bool = True
) -> Received:
    """Store a custody deposit and its pending Deposit; the same reference with another payload is a 409."""
    deposit = signed_deposit_validate(payload)
    return _store(
        provider=provider,
        event_id=deposit.reference,
        event_type="deposit",
        payload=payload,
        headers=headers,
        raw_body=raw_body,
        enqueue=enqueue,
        deposit_fields={
            "reference": deposit.reference,
            "user": deposit.user,
            "amount_u": deposit.amount_u,
            "currency": deposit.currency,
        },
    )


# --- Processing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str
    journal_reference: str = ""


def _processed(reason: str, journal_reference: str = "") -> Outcome:
    return Outcome(WebhookEvent.Status.PROCESSED, reason, journal_reference)


def _flagged(reason: str, journal_reference: str = "") -> Outcome:
    return Outcome(WebhookEvent.Status.FLAGGED, reason, journal_reference)


def _deposit_for_update(notice: Notice) -> Deposit | None:
    """Find and lock the deposit an event is about (by our reference, else by the PSP's ids); join its flow."""
    deposit = _deposit_matching(notice, Deposit.objects.select_for_update().filter(provider=notice.provider))
    if deposit is not None:
        flow_bind(deposit.flow_id)
    return deposit


def _deposit_matching(notice: Notice, deposits: Any) -> Any:
    if notice.deposit_reference:
        deposit = deposits.filter(reference=notice.deposit_reference).first()
        if deposit is not None:
            return deposit
    if notice.psp_reference:
        return (
            deposits.filter(psp_payment_reference=notice.psp_reference).order_by("pk").first()
            or deposits.filter(psp_id=notice.psp_reference).order_by("pk").first()
        )
    return None


def _join_deposit_flow(notice: Notice) -> None:
    """Bind the flow of the deposit a PSP event is about, when we know it, before the event is queued."""
    if notice.kind == Kind.IGNORE:
        return
    flow_id = _deposit_matching(
        notice, Deposit.objects.filter(provider=notice.provider).values_list("flow_id", flat=True)
    )
    if flow_id:
        flow_bind(flow_id)


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
            source=external_account(provider=notice.provider, currency=deposit.currency),
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


def webhook_event_process(*, event_id: int, replay: bool = False) -> WebhookEvent:
    """Process one stored event to a final status; safe to run twice (processed events are no-ops).

    The automatic path processes `received` and `failed` events; a replay also re-examines a
    `flagged` one (after an operator fixed its cause). Money moves only through ledger references
    derived from the PSP's payment, so no path credits twice.
    """
    with transaction.atomic():
        service_write_allow()  # deposits' money columns change here only (red-line trigger)
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise UnknownWebhookEvent(f"No webhook event with id {event_id}.")
        open_statuses = {WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED}
        if replay:
            open_statuses.add(WebhookEvent.Status.FLAGGED)
        if event.status not in open_statuses:
            return event
        notice = notice_for(event.provider, event.payload)
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
    if event.status == WebhookEvent.Status.FLAGGED:
        logger.warning("webhook event %s flagged: %s", event.pk, event.reason)
    return event


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


# --- Simulation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedDeposit:
    user: Any
    currency: str
    amount_u: int
    reference: str
    status: str
    duplicate: bool
    balance_u: int


def simulated_deposit(*, user_id: Any, amount_u: Any, currency: Any, reference: Any = None) -> SimulatedDeposit:
    """The house manual's dev deposit: a confirmed deposit through the same path, processed at once.

    `amount_u` 0 only reads the balance.
    """
    from ledger.selectors import account_balance

    amount_u = _amount(amount_u, allow_zero=True)
    currency = _currency(currency)
    user = _player(user_id)
    if amount_u == 0:
        balance = account_balance(account=user_account(user=user, currency=currency))
        return SimulatedDeposit(user, currency, 0, "", "balance", False, balance)
    payload = {
        "reference": str(reference or uuid.uuid4()),
        "user_id": str(user.public_id),
        "amount_u": amount_u,
        "currency": currency,
    }
    received = signed_deposit_receive(provider=Provider.SIMULATION, payload=payload, headers={}, enqueue=False)
    event = webhook_event_process(event_id=received.event.pk)
    balance = account_balance(account=user_account(user=user, currency=currency))
    return SimulatedDeposit(user, currency, amount_u, payload["reference"], event.status, received.duplicate, balance)
