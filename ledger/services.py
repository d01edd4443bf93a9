"""Writes to the ledger: posting journals, transfers, reversals, and the accounts they use.

A posting locks every account it touches (ascending id, SELECT ... FOR UPDATE), inserts the journal
(its reference is unique forever, so a replay is recognised), checks and updates the stored
balances, and inserts the entries, all in one short transaction with no network I/O inside. Those
steps run inside the database: one call of `ledger_post` per posting, one of
`ledger_post_batch` per batch (migration 0005), so a posting costs one round trip, made on the
connection's own psycopg cursor as a prepared statement (`ledger.db_calls`: the client's Python per posting
stays small beside the function's own time, with Django's error mapping and rollback marking). A posting with
more legs than belong in Python (a round's payouts) comes in as rows: the caller stages them in
`ledger_posting_leg` with its own `INSERT ... SELECT`, then `journal_post_staged` posts them with one call
of `ledger_post_staged` (migration 0008). The ledger never runs a caller's SQL, and names no caller's
accounts: the generic opener `account_get_or_create` opens them (rounds names its pools).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from ops.actors import Actor, SystemActor, actor_label, actor_user, require_actor, require_player
from ops.validation import amount_u_check

from .currencies import get_currency
from .db_calls import int_array, posting_rows, text_array
from .errors import (
    AlreadyReversed,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAccount,
    InvalidAmount,
    InvalidReference,
    LedgerError,
    ReasonRequired,
    ReferenceConflict,
    UnbalancedJournal,
)
from .models import Account, Journal, PostingLeg

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True)
class Leg:
    """One side of a posting: an account and a signed amount in minor units."""

    account: Account
    amount_u: int


# --- Accounts ----------------------------------------------------------------------------------


def account_get_or_create(
    *, name: str, currency: str, kind: str, owner: Any = None, allow_negative: bool = False
) -> Account:
    """Return the account with this name and currency, creating it if needed.

    Through `ledger_account_open` (migration 0008), a function run with the owner's rights: the
    application's database role may read `ledger_account` but not insert into it.
    """
    get_currency(currency)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_account_open(%s, %s, %s, %s, %s)",  # noqa: S608
            [name, currency, kind, owner.pk if owner is not None else None, allow_negative],
        )
        row = cursor.fetchone()
    return Account.from_db(connection.alias, _ACCOUNT_FIELDS, list(row))


_ACCOUNT_FIELDS = [field.attname for field in Account._meta.concrete_fields]
_ACCOUNT_COLUMNS = ", ".join(str(field.column) for field in Account._meta.concrete_fields)


def user_account(*, user: User, currency: str, kind: str = Account.Kind.USER_AVAILABLE) -> Account:
    """Return a player's available or held account in a currency; operators have none (NotAPlayer)."""
    require_player(user, active=False)
    return account_get_or_create(name=user_account_name(user=user, kind=kind), currency=currency, kind=kind, owner=user)


def user_account_name(*, user: User, kind: str = Account.Kind.USER_AVAILABLE) -> str:
    """Return the name of a player's available or held account (`user:<public_id>:available`)."""
    suffixes: dict[str, str] = {Account.Kind.USER_AVAILABLE: "available", Account.Kind.USER_HELD: "held"}
    return f"user:{user.public_id}:{suffixes[kind]}"


def house_account(*, currency: str) -> Account:
    """Return the house account (fees and breakage) in a currency."""
    return account_get_or_create(name="house", currency=currency, kind=Account.Kind.HOUSE)


def external_account(*, provider: str, currency: str) -> Account:
    """Return the clearing account for money from or to the outside (`psp:<provider>`); may go negative.

    A product may spread its postings over stripes of it, EXTERNAL accounts it opens and names
    `psp:<provider>:<n>` (the deposits do, `webhooks.accounts`): the provider's clearing balance is then
    this account plus its stripes.
    """
    return account_get_or_create(
        name=f"psp:{provider}", currency=currency, kind=Account.Kind.EXTERNAL, allow_negative=True
    )


# --- Validation --------------------------------------------------------------------------------


def _validate_amount(amount_u: Any) -> int:
    """Return a leg's amount (negative allowed, never zero), or raise InvalidAmount."""
    return amount_u_check(amount_u, error=InvalidAmount, allow_negative=True)


def _validate_legs(legs: Sequence[Leg]) -> None:
    if len(legs) < 2:
        raise UnbalancedJournal("A journal needs at least two entries.")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        _validate_amount(leg.amount_u)
        if leg.account.pk is None:
            raise InvalidAccount("Every leg needs a saved account.")
        get_currency(leg.account.currency)
        totals[leg.account.currency] += leg.amount_u
    unbalanced = {c: t for c, t in totals.items() if t != 0}
    if unbalanced:
        detail = ", ".join(f"{c} {t:+d}" for c, t in sorted(unbalanced.items()))
        raise UnbalancedJournal(f"Entries must sum to zero per currency; off by {detail}.")


def _fingerprint(type: str, legs: Sequence[Leg], reverses_id: int | None) -> str:
    parts = sorted(f"{leg.account.pk}:{leg.amount_u}" for leg in legs)
    text = f"{type}|{reverses_id or ''}|{','.join(parts)}"
    return hashlib.sha256(text.encode()).hexdigest()


def _reference_conflict(reference: str) -> ReferenceConflict:
    return ReferenceConflict(f"Reference {reference!r} was already posted with different contents; nothing was posted.")


def _insufficient_funds(*, name: str, currency: str, balance_u: int, delta_u: int) -> InsufficientFunds:
    money = get_currency(currency)
    return InsufficientFunds(
        f"{name} has {money.format(balance_u)}; this needs {money.format(-delta_u)}. Nothing was posted.",
        extra={"account": name, "balance_u": balance_u, "required_u": -delta_u},
    )


def _refusal(status: str, detail: Mapping[str, Any], *, reference: str, reverses: Journal | None) -> LedgerError:
    """Return the error a posting function's refusal stands for."""
    if status == "unknown_account":
        return InvalidAccount(f"Account {detail['account_id']} does not exist.")
    if status == "currency_mismatch":
        return CurrencyMismatch(f"Account {detail['name']} is not in {detail['currency']}.")
    if status == "insufficient_funds":
        return _insufficient_funds(
            name=detail["name"],
            currency=detail["currency"],
            balance_u=int(detail["balance_u"]),
            delta_u=int(detail["delta_u"]),
        )
    if status in ("reference_conflict", "duplicate_reference"):
        return _reference_conflict(reference)
    if status == "already_reversed" and reverses is not None:
        return AlreadyReversed(f"Journal {reverses.reference!r} was already reversed.")
    raise RuntimeError(f"The posting function answered {status!r} for {reference!r}.")


def posting_refusal(status: str, detail: Any, *, reference: str) -> LedgerError:
    """Return the error a refusal of `ledger_post` stands for (its status and detail, as the function answered).

    For a caller that calls `ledger_post` from inside its own database function (`rounds_bet_place`, migration
    rounds 0012) and gets the posting's answer back: the same refusal `journal_post` would raise.
    """
    return _refusal(status, _json(detail) or {}, reference=reference, reverses=None)


def _json(value: Any) -> Any:
    """Decode a jsonb column (Django's PostgreSQL backend reads jsonb as text)."""
    return json.loads(value) if isinstance(value, str) else value


def _replayed(journal: Journal) -> Journal:
    journal.replayed = True
    return journal


# --- Postings ----------------------------------------------------------------------------------


def _validate_reference(reference: Any) -> None:
    if not isinstance(reference, str) or not reference or len(reference) > 200:
        raise InvalidReference("A posting needs a reference of 1 to 200 characters.")


def journal_post(
    *,
    type: str,
    reference: str,
    legs: Sequence[Leg],
    actor: Actor,
    metadata: Mapping[str, Any] | None = None,
    reverses: Journal | None = None,
) -> Journal:
    """Post a balanced multi-leg journal once per reference; a replay returns the original.

    Raises a LedgerError (and changes nothing) on a bad amount, an unknown currency, unbalanced legs,
    an unknown account or one in another currency, an overdraft of an account that may not go
    negative, or a reference reused with other contents. This is one statement, a call of
    `ledger_post` (migration 0005), which locks, checks and writes inside the database; the checks here
    are the ones that need no row (amounts, balance per currency, reference, actor), so a refusal from
    either side leaves everything as it was. The call goes through `ledger.db_calls.posting_rows`.
    """
    require_actor(actor)
    _validate_legs(legs)
    _validate_reference(reference)
    fields = {
        "type": type,
        "reference": reference,
        "fingerprint": _fingerprint(type, legs, reverses.pk if reverses else None),
        "metadata": dict(metadata or {}),
        "actor_id": None if isinstance(actor, SystemActor) else actor.pk,
        "actor_label": actor_label(actor),
        "reverses_id": reverses.pk if reverses else None,
    }
    journal = _post_postgresql(fields, legs, reverses)
    if not journal.replayed:
        if not isinstance(actor, SystemActor):
            journal.actor = actor  # the related objects the caller holds, so reading them costs no query
        if reverses is not None:
            journal.reverses = reverses
    return journal


_JOURNAL_FIELDS = [field.attname for field in Journal._meta.concrete_fields]


def _post_postgresql(fields: Mapping[str, Any], legs: Sequence[Leg], reverses: Journal | None) -> Journal:
    """Post with one call of `ledger_post`: locks, checks, journal, entries and balances in the database."""
    ((status, journal_id, created_at, detail),) = posting_rows(
        "SELECT status, journal_id, created_at, detail FROM ledger_post("
        "%s, %s, %s, %s::jsonb, %s, %s, %s, %s::bigint[], %s::varchar[], %s::bigint[])",
        [
            fields["type"],
            fields["reference"],
            fields["fingerprint"],
            json.dumps(fields["metadata"]) if fields["metadata"] else "{}",
            fields["actor_id"],
            fields["actor_label"],
            fields["reverses_id"],
            int_array(leg.account.pk for leg in legs),
            text_array(leg.account.currency for leg in legs),
            int_array(leg.amount_u for leg in legs),
        ],
    )
    if status == "posted":
        return _inserted({**fields, "id": journal_id, "created_at": created_at})
    if status == "replay":
        return _replayed(Journal.objects.get(pk=journal_id))
    raise _refusal(status, _json(detail), reference=fields["reference"], reverses=reverses)


def _inserted(row: Mapping[str, Any]) -> Journal:
    """Build the Journal a posting function inserted, as a query reading the row back would."""
    journal = Journal.from_db(connection.alias, _JOURNAL_FIELDS, [row[name] for name in _JOURNAL_FIELDS])
    journal.replayed = False
    return journal


@dataclass(frozen=True)
class Posting:
    """One journal of a batch: what `journal_post` takes, except a reversal."""

    type: str
    reference: str
    legs: Sequence[Leg]
    metadata: Mapping[str, Any] | None = None


def journal_post_batch(*, postings: Sequence[Posting], actor: Actor) -> list[Journal]:
    """Post many independent journals in one transaction, all or nothing; return them in order.

    Each posting gets the guards of `journal_post`, checked against the balances the postings before
    it in the batch leave (as posting them one by one would). The first refusal refuses the whole
    batch: nothing is posted, and the error is the one `journal_post` would raise, its detail naming
    the posting's reference (also in `extra["reference"]`). The accounts of the whole batch are locked
    once, in ascending id order, so a batch and single postings never deadlock. Idempotent per
    reference: one already posted with the same contents is a replay (the existing journal, marked
    `replayed`, moves nothing); with other contents, ReferenceConflict. A reference given twice in
    the batch with the same contents is posted once. This is one call of `ledger_post_batch`
    (migration 0005).
    """
    require_actor(actor)
    fingerprints: dict[str, str] = {}
    unique: list[Posting] = []
    for posting in postings:
        try:
            _validate_legs(posting.legs)
            _validate_reference(posting.reference)
        except LedgerError as exc:
            raise _in_batch(exc, posting.reference) from exc
        fingerprint = _fingerprint(posting.type, posting.legs, None)
        seen = fingerprints.get(posting.reference)
        if seen is None:
            fingerprints[posting.reference] = fingerprint
            unique.append(posting)
        elif seen != fingerprint:
            raise _in_batch(_reference_conflict(posting.reference), posting.reference)
    if not unique:
        return []
    journals = _post_batch_postgresql(unique, fingerprints, actor)
    by_reference = {journal.reference: journal for journal in journals}
    return [by_reference[posting.reference] for posting in postings]


def _in_batch(exc: LedgerError, reference: str) -> LedgerError:
    """Return the same refusal, naming the posting of the batch it concerns."""
    return type(exc)(f"{reference!r} in the batch: {exc.detail}", extra={**exc.extra, "reference": reference})


def _post_batch_postgresql(postings: Sequence[Posting], fingerprints: Mapping[str, str], actor: Actor) -> list[Journal]:
    """Post the batch with one call of `ledger_post_batch`."""
    user, label = actor_user(actor), actor_label(actor)
    rows = [
        {
            "type": p.type,
            "reference": p.reference,
            "fingerprint": fingerprints[p.reference],
            "metadata": dict(p.metadata or {}),
            "actor_id": user.pk if user is not None else None,
            "actor_label": label,
            "reverses_id": None,
        }
        for p in postings
    ]
    leg_postings: list[int] = []
    account_ids: list[int] = []
    currencies: list[str] = []
    amounts: list[int] = []
    for number, posting in enumerate(postings, start=1):
        for leg in posting.legs:
            leg_postings.append(number)
            account_ids.append(leg.account.pk)
            currencies.append(leg.account.currency)
            amounts.append(leg.amount_u)
    results = posting_rows(
        "SELECT posting, status, journal_id, created_at, detail FROM ledger_post_batch("
        "%s::varchar[], %s::varchar[], %s::varchar[], %s::jsonb, %s, %s, "
        "%s::integer[], %s::bigint[], %s::varchar[], %s::bigint[])",
        [
            [row["type"] for row in rows],
            [row["reference"] for row in rows],
            [row["fingerprint"] for row in rows],
            json.dumps([row["metadata"] for row in rows]),
            user.pk if user is not None else None,
            label,
            int_array(leg_postings),
            int_array(account_ids),
            text_array(currencies),
            int_array(amounts),
        ],
    )
    refused = [result for result in results if result[1] not in ("posted", "replay")]
    if refused:
        number, status, _, _, detail = refused[0]
        reference = postings[number - 1].reference if number else postings[0].reference
        raise _in_batch(_refusal(status, _json(detail) or {}, reference=reference, reverses=None), reference)
    replays = Journal.objects.in_bulk([journal_id for _, status, journal_id, _, _ in results if status == "replay"])
    return [
        _inserted({**rows[number - 1], "id": journal_id, "created_at": created_at})
        if status == "posted"
        else _replayed(replays[journal_id])
        for number, status, journal_id, created_at, _ in results
    ]


POSTING_LEG_TABLE = PostingLeg._meta.db_table  # what a caller's INSERT ... SELECT stages into


def posting_legs_stage(*, reference: str, legs: Sequence[Leg]) -> None:
    """Stage a few legs from Python for `journal_post_staged` (inside the caller's transaction).

    A caller with many legs stages them with its own set-based `INSERT ... SELECT` into
    `ledger_posting_leg (posting_reference, account_id, amount_u)` (`POSTING_LEG_TABLE`) in its own
    module; this stages the handful it holds as objects (a round's pool and house legs).
    """
    _validate_reference(reference)
    for leg in legs:
        _validate_amount(leg.amount_u)
        if leg.account.pk is None:
            raise InvalidAccount("Every leg needs a saved account.")
    _require_transaction("posting_legs_stage")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {POSTING_LEG_TABLE} (posting_reference, account_id, amount_u)"  # noqa: S608
            " SELECT %s, l.account_id, l.amount_u FROM unnest(%s::bigint[], %s::bigint[]) AS l(account_id, amount_u)",
            [reference, [leg.account.pk for leg in legs], [leg.amount_u for leg in legs]],
        )


def _require_transaction(what: str) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError(f"{what}() runs inside transaction.atomic(): staged legs live for one transaction.")


def journal_post_staged(
    *,
    type: str,
    reference: str,
    currency: str,
    actor: Actor,
    metadata: Mapping[str, Any] | None = None,
) -> Journal:
    """Post one journal from the legs this transaction staged under `reference`, once per reference.

    The caller stages the legs in `ledger_posting_leg` first (its own `INSERT ... SELECT`, or
    `posting_legs_stage`), in the same transaction. One call of `ledger_post_staged` (migration 0008)
    then posts them with the rules of `journal_post`: the accounts locked in ascending id order and
    checked (they exist, they are in `currency`, none that may not go negative is overdrawn), the legs
    summing to zero, no zero leg, the same fingerprint as `journal_post` (so a replay with the same legs
    returns the existing journal, marked `replayed`; other legs, ReferenceConflict). It deletes the staged
    rows whatever it answers; a refusal raises the matching LedgerError and writes nothing.
    """
    require_actor(actor)
    get_currency(currency)
    _validate_reference(reference)
    _require_transaction("journal_post_staged")
    actor_id = None if isinstance(actor, SystemActor) else actor.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, journal_id, detail FROM ledger_post_staged(%s, %s, %s, %s::jsonb, %s, %s)",
            [type, reference, currency, json.dumps(dict(metadata or {})), actor_id, actor_label(actor)],
        )
        status, journal_id, detail = cursor.fetchone()
    if status == "posted":
        journal = Journal.objects.get(pk=journal_id)
        journal.replayed = False
        if not isinstance(actor, SystemActor):
            journal.actor = actor
        return journal
    if status == "replay":
        return _replayed(Journal.objects.get(pk=journal_id))
    detail = _json(detail) or {}
    if status == "invalid_amount":
        raise InvalidAmount(f"{reference!r} has {detail['zero_legs']} staged legs of zero; nothing was posted.")
    if status == "unbalanced":
        raise UnbalancedJournal(
            f"{reference!r} has {detail['legs']} staged legs summing to {int(detail['total_u']):+d}: a journal needs"
            " at least two entries summing to zero; nothing was posted.",
            extra={"legs": int(detail["legs"]), "total_u": int(detail["total_u"])},
        )
    raise _refusal(status, detail, reference=reference, reverses=None)


def _transfer_legs(source: Account, destination: Account, amount_u: int) -> list[Leg]:
    _validate_amount(amount_u)
    if amount_u < 0:
        raise InvalidAmount("A transfer moves a positive amount; swap the accounts instead.")
    if source.currency != destination.currency:
        raise CurrencyMismatch(f"{source.name} is in {source.currency}, {destination.name} in {destination.currency}.")
    if source.pk == destination.pk:
        raise InvalidAccount("A transfer needs two different accounts.")
    return [Leg(source, -amount_u), Leg(destination, amount_u)]


def transfer(
    *,
    source: Account,
    destination: Account,
    amount_u: int,
    type: str,
    reference: str,
    actor: Actor,
    metadata: Mapping[str, Any] | None = None,
) -> Journal:
    """Move a positive amount from one account to another, once per reference."""
    return journal_post(
        type=type,
        reference=reference,
        legs=_transfer_legs(source, destination, amount_u),
        actor=actor,
        metadata=metadata,
    )


@dataclass(frozen=True)
class Transfer:
    """One transfer of a batch: what `transfer` takes, except the actor."""

    source: Account
    destination: Account
    amount_u: int
    type: str
    reference: str
    metadata: Mapping[str, Any] | None = None


def transfer_batch(*, transfers: Sequence[Transfer], actor: Actor) -> list[Journal]:
    """Post many independent transfers in one transaction, all or nothing (see `journal_post_batch`)."""
    postings = []
    for order in transfers:
        try:
            legs = _transfer_legs(order.source, order.destination, order.amount_u)
        except LedgerError as exc:
            raise _in_batch(exc, order.reference) from exc
        postings.append(Posting(type=order.type, reference=order.reference, legs=legs, metadata=order.metadata))
    return journal_post_batch(postings=postings, actor=actor)


def journal_reverse(*, journal: Journal, reference: str, actor: Actor, reason: str) -> Journal:
    """Post the exact opposite of a journal, linked to it; a journal is reversed at most once."""
    if not reason.strip():
        raise ReasonRequired("A reversal needs a reason.")
    if journal.reverses_id is not None:
        raise AlreadyReversed("A reversal cannot itself be reversed; post a new journal instead.")
    legs = [Leg(entry.account, -entry.amount_u) for entry in journal.entries.select_related("account")]
    return journal_post(
        type="reversal",
        reference=reference,
        legs=legs,
        actor=actor,
        metadata={"reason": reason, "reverses": journal.reference},
        reverses=journal,
    )


def operator_credit(
    *,
    user: User,
    amount_u: int,
    currency: str,
    actor: Actor,
    reference: str,
    reason: str,
    audit_reason: str = "",
    audit_data: dict[str, Any] | None = None,
) -> Journal:
    """Credit a player's available balance from `psp:manual`, once per reference, audited.

    Only the maker-checker (`ledger.decisions`) and bootstrap demo data call this: an operator's
    credit is a proposal that a second operator approves. `reason` is the credit's (the journal's);
    `audit_reason` is the acting operator's own when they differ (the approver's), with `audit_data`.
    """
    from ops.audit import audit_record

    get_currency(currency)
    amount_u_check(amount_u, error=InvalidAmount)  # a credit is positive
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRequired("An operator credit needs a reason.")
    with transaction.atomic():
        journal = transfer(
            source=external_account(provider="manual", currency=currency),
            destination=user_account(user=user, currency=currency),
            amount_u=amount_u,
            type="deposit",
            reference=reference,
            actor=actor,
            metadata={"reason": reason, "channel": "operator"},
        )
        if not journal.replayed:
            audit_record(
                actor=actor,
                action="ledger.operator_credit",
                obj=journal,
                reason=(audit_reason or reason).strip(),
                data={
                    "user": str(user.public_id),
                    "amount_u": amount_u,
                    "currency": currency,
                    **(audit_data or {}),
                },
            )
    return journal
