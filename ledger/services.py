"""Writes to the ledger: posting journals, transfers, reversals, and the accounts they use.

A posting locks every account it touches (ascending id, SELECT ... FOR UPDATE), inserts the journal
(its reference is unique forever, so a replay is recognised), checks and updates the stored
balances, and inserts the entries, all in one short transaction with no network I/O inside. On
PostgreSQL those steps run inside the database: one call of `ledger_post` per posting, one of
`ledger_post_batch` per batch (migration 0005), so a posting costs one round trip.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction

from ops.actors import Actor, SystemActor, actor_label, actor_user, require_actor, require_player
from ops.validation import amount_u_check

from .currencies import get_currency
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
from .lock_objects import LockedAccount, accounts_lock, accounts_lock_from_query
from .models import Account, Entry, Journal

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
    suffixes: dict[str, str] = {Account.Kind.USER_AVAILABLE: "available", Account.Kind.USER_HELD: "held"}
    suffix = suffixes[kind]
    return account_get_or_create(name=f"user:{user.public_id}:{suffix}", currency=currency, kind=kind, owner=user)


def house_account(*, currency: str) -> Account:
    """Return the house account (fees and breakage) in a currency."""
    return account_get_or_create(name="house", currency=currency, kind=Account.Kind.HOUSE)


def external_account(*, provider: str, currency: str) -> Account:
    """Return the clearing account for money from or to the outside (`psp:<provider>`); may go negative."""
    return account_get_or_create(
        name=f"psp:{provider}", currency=currency, kind=Account.Kind.EXTERNAL, allow_negative=True
    )


def round_pool_account(*, code: str, currency: str) -> Account:
    """Return the pool account holding the stakes of one round."""
    return account_get_or_create(name=f"round:{code}:pool", currency=currency, kind=Account.Kind.ROUND_POOL)


def round_pool_stripe_account(*, code: str, currency: str, stripe: int) -> Account:
    """Return stripe `stripe` of a round's pool (`round:<code>:pool:<stripe>`): stakes before lock land here.

    Bets of one round credit different stripes, so no balance row is written by every bet; the round folds
    its stripes into `round_pool_account` when it locks (`rounds.pools`). A stripe is a round pool account.
    """
    if isinstance(stripe, bool) or not isinstance(stripe, int) or stripe < 0:
        raise InvalidAmount(f"A pool stripe is a whole number from 0, not {stripe!r}.")
    return account_get_or_create(name=f"round:{code}:pool:{stripe}", currency=currency, kind=Account.Kind.ROUND_POOL)


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


def _apply_balances(deltas: Mapping[int, int]) -> None:
    """Add each delta to its account's stored balance in one statement (rows already locked)."""
    ids = list(deltas)
    if not ids:
        return
    cases = " ".join("WHEN %s THEN %s" for _ in ids)
    params: list[int] = []
    for account_id in ids:
        params.extend((account_id, deltas[account_id]))
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE ledger_account SET balance_u = balance_u + (CASE id {cases} END) "  # noqa: S608
            f"WHERE id IN ({placeholders})",
            [*params, *ids],
        )


FAST_WRITE = True  # on PostgreSQL, one call of a posting function (migration 0005); tests also run the portable path


def _fast_path() -> bool:
    return FAST_WRITE and connection.vendor == "postgresql"


def _write_portable(journal: Journal, legs: Sequence[Leg], deltas: Mapping[int, int]) -> None:
    """Insert the journal and its entries and apply the balances with the ORM (any database)."""
    journal.save(force_insert=True)
    Entry.objects.bulk_create(
        Entry(journal=journal, account_id=leg.account.pk, currency=leg.account.currency, amount_u=leg.amount_u)
        for leg in legs
    )
    _apply_balances(deltas)


def _existing(reference: str, fingerprint: str) -> Journal:
    journal = Journal.objects.get(reference=reference)
    if journal.fingerprint != fingerprint:
        raise _reference_conflict(reference)
    journal.replayed = True
    return journal


def _reference_conflict(reference: str) -> ReferenceConflict:
    return ReferenceConflict(f"Reference {reference!r} was already posted with different contents; nothing was posted.")


def _insufficient_funds(*, name: str, currency: str, balance_u: int, delta_u: int) -> InsufficientFunds:
    money = get_currency(currency)
    return InsufficientFunds(
        f"{name} has {money.format(balance_u)}; this needs {money.format(-delta_u)}. Nothing was posted.",
        extra={"account": name, "balance_u": balance_u, "required_u": -delta_u},
    )


def _refusal(status: str, detail: Mapping[str, Any], *, reference: str, reverses: Journal | None) -> LedgerError:
    """Return the error a posting function's refusal stands for (the portable path raises the same)."""
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
    negative, or a reference reused with other contents. On PostgreSQL this is one statement, a call
    of `ledger_post` (migration 0005), which locks, checks and writes inside the database; elsewhere
    the same steps run from Python.
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
    if _fast_path():
        journal = _post_postgresql(fields, legs, reverses)
    else:
        journal = _post_portable(Journal(**fields), legs, reverses)
    if not journal.replayed:
        if not isinstance(actor, SystemActor):
            journal.actor = actor  # the related objects the caller holds, so reading them costs no query
        if reverses is not None:
            journal.reverses = reverses
    return journal


_JOURNAL_FIELDS = [field.attname for field in Journal._meta.concrete_fields]


def _post_postgresql(fields: Mapping[str, Any], legs: Sequence[Leg], reverses: Journal | None) -> Journal:
    """Post with one call of `ledger_post`: locks, checks, journal, entries and balances in the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, journal_id, created_at, detail FROM ledger_post("
            "%s, %s, %s, %s::jsonb, %s, %s, %s, %s::bigint[], %s::varchar[], %s::bigint[])",
            [
                fields["type"],
                fields["reference"],
                fields["fingerprint"],
                json.dumps(fields["metadata"]),
                fields["actor_id"],
                fields["actor_label"],
                fields["reverses_id"],
                [leg.account.pk for leg in legs],
                [leg.account.currency for leg in legs],
                [leg.amount_u for leg in legs],
            ],
        )
        status, journal_id, created_at, detail = cursor.fetchone()
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


def _post_portable(journal: Journal, legs: Sequence[Leg], reverses: Journal | None) -> Journal:
    """Post from Python: lock the accounts, check them, write with the ORM, all in one transaction."""
    reference, fingerprint = journal.reference, journal.fingerprint
    deltas: dict[int, int] = defaultdict(int)
    for leg in legs:
        deltas[leg.account.pk] += leg.amount_u
    try:
        with transaction.atomic():
            locked = accounts_lock(deltas)
            _check_currencies(legs, locked)
            _check_funds(deltas, locked)
            _write_portable(journal, legs, {k: v for k, v in deltas.items() if v != 0})
    except InsufficientFunds:
        # The reference is unique forever: if it was posted before, this is a replay, not an overdraft.
        if Journal.objects.filter(reference=reference).exists():
            return _existing(reference, fingerprint)
        if reverses is not None and Journal.objects.filter(reverses=reverses).exists():
            raise AlreadyReversed(f"Journal {reverses.reference!r} was already reversed.") from None
        raise
    except IntegrityError as exc:
        if Journal.objects.filter(reference=reference).exists():
            return _existing(reference, fingerprint)
        if reverses is not None and Journal.objects.filter(reverses=reverses).exists():
            raise AlreadyReversed(f"Journal {reverses.reference!r} was already reversed.") from exc
        raise
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
    the batch with the same contents is posted once. On PostgreSQL this is one call of
    `ledger_post_batch` (migration 0005).
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
    if _fast_path():
        journals = _post_batch_postgresql(unique, fingerprints, actor)
    else:
        journals = _post_batch_portable(unique, actor)
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
    with connection.cursor() as cursor:
        cursor.execute(
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
                leg_postings,
                account_ids,
                currencies,
                amounts,
            ],
        )
        results = cursor.fetchall()
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


def _post_batch_portable(postings: Sequence[Posting], actor: Actor) -> list[Journal]:
    """Post the batch from Python: lock every account once (ascending id), then post one by one."""
    with transaction.atomic():
        accounts_lock(leg.account.pk for posting in postings for leg in posting.legs)
        journals = []
        for posting in postings:
            try:
                journals.append(
                    journal_post(
                        type=posting.type,
                        reference=posting.reference,
                        legs=posting.legs,
                        actor=actor,
                        metadata=posting.metadata,
                    )
                )
            except LedgerError as exc:
                raise _in_batch(exc, posting.reference) from exc
    return journals


@dataclass(frozen=True)
class LegQuery:
    """Legs given by a query of the caller's own tables: `SELECT account_id, amount_u FROM ...`.

    For postings with more legs than belong in Python (a round's payouts). The accounts must all be in
    the posting's currency; rows with a zero amount are skipped. `rows`, when the caller knows it, is how
    many rows the query returns: the planner's statistics cannot know rows written earlier in the same
    transaction (a round's payouts), and a posting touching a large share of the accounts is planned
    with hash joins rather than one index probe per leg (`_without_nested_loops`).
    """

    sql: str
    params: Sequence[Any]
    rows: int = 0


BULK_HASH_JOIN_ROWS = 10_000  # below this many legs, index probes per leg are cheap whatever the plan


def _bulk_is_large(rows: int) -> bool:
    """Whether a posting of `rows` legs touches a large share of the accounts (plan it with hash joins)."""
    if rows < BULK_HASH_JOIN_ROWS:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'ledger_account'::regclass")
        (accounts,) = cursor.fetchone()
    return bool(rows * 10 >= accounts)  # a small share of a large table: index probes beat a scan of it


@contextmanager
def _without_nested_loops(active: bool) -> Iterator[None]:
    """Plan the statements inside without nested loops when `active`, then restore the planner.

    Only around statements that join the legs with ledger_account (the lock, the balances): a scan of
    that table is bounded by `_bulk_is_large`, whereas the entries' insert also joins ledger_journal
    (its statement trigger), which only grows, so it keeps the default plan. The setting is
    transaction-local (`set_config(..., true)`): an error inside rolls back the posting's savepoint or
    transaction and the setting with it, so it is restored here only on success.
    """
    if not active:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_nestloop')")
        (previous,) = cursor.fetchone()
        cursor.execute("SELECT set_config('enable_nestloop', 'off', true)")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [previous])


def journal_post_bulk(
    *,
    type: str,
    reference: str,
    currency: str,
    legs: Sequence[Leg],
    leg_query: LegQuery,
    actor: Actor,
    metadata: Mapping[str, Any] | None = None,
) -> Journal:
    """Post one balanced journal whose legs are `legs` plus the rows of `leg_query`.

    The same guards as `journal_post`: the accounts locked in ascending id order, the currency checked,
    no account that may not go negative left negative, the journal summing to zero (checked here before
    the balances move, and by the database at commit), a reference posted at most once. On PostgreSQL
    the entries and balances are written set-based; elsewhere the query's rows become ordinary legs.
    """
    require_actor(actor)
    get_currency(currency)
    if not _fast_path():
        with connection.cursor() as cursor:
            cursor.execute(leg_query.sql, list(leg_query.params))
            rows = [(int(account_id), int(amount_u)) for account_id, amount_u in cursor.fetchall() if amount_u]
        accounts = Account.objects.in_bulk([account_id for account_id, _ in rows])
        foreign = [a.name for a in [*accounts.values(), *(leg.account for leg in legs)] if a.currency != currency]
        if foreign:
            raise CurrencyMismatch(f"{foreign[0]} in the legs of {reference!r} is not in {currency}.")
        all_legs = [*legs, *(Leg(accounts[account_id], amount_u) for account_id, amount_u in rows)]
        return journal_post(type=type, reference=reference, legs=all_legs, actor=actor, metadata=metadata)
    for leg in legs:
        _validate_amount(leg.amount_u)
    if Journal.objects.filter(reference=reference).exists():
        raise ReferenceConflict(f"Reference {reference!r} was already posted; nothing was posted.")
    fixed_ids = [leg.account.pk for leg in legs]
    fixed_amounts = [leg.amount_u for leg in legs]
    params = list(leg_query.params)
    with transaction.atomic():
        large = _bulk_is_large(leg_query.rows)
        with _without_nested_loops(large):
            _, foreign_count = accounts_lock_from_query(
                sql=leg_query.sql, params=params, extra_ids=fixed_ids, currency=currency
            )
        if foreign_count:
            raise CurrencyMismatch(f"{foreign_count} accounts in the legs of {reference!r} are not in {currency}.")
        journal = Journal.objects.create(
            type=type,
            reference=reference,
            metadata=dict(metadata or {}),
            actor=actor_user(actor),
            actor_label=actor_label(actor),
            fingerprint=hashlib.sha256(f"{type}|bulk|{reference}".encode()).hexdigest(),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u)"  # noqa: S608
                f" SELECT %s, q.account_id, %s, q.amount_u FROM ({leg_query.sql}) AS q(account_id, amount_u)"
                " WHERE q.amount_u <> 0"
                " UNION ALL SELECT %s, f.account_id, %s, f.amount_u"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS f(account_id, amount_u) WHERE f.amount_u <> 0",
                [journal.pk, currency, *params, journal.pk, currency, fixed_ids, fixed_amounts],
            )
            cursor.execute(
                "SELECT COALESCE(SUM(amount_u), 0), COUNT(*) FROM ledger_entry WHERE journal_id = %s", [journal.pk]
            )
            total, count = (int(value) for value in cursor.fetchone())
            if count < 2 or total != 0:
                raise UnbalancedJournal(f"{reference!r} has {count} entries summing to {total:+d}; nothing was posted.")
            try:
                with transaction.atomic(), _without_nested_loops(large):
                    cursor.execute(
                        "UPDATE ledger_account a SET balance_u = a.balance_u + d.delta"
                        " FROM (SELECT account_id, SUM(amount_u) AS delta FROM ledger_entry"
                        "       WHERE journal_id = %s GROUP BY account_id) d"
                        " WHERE a.id = d.account_id AND d.delta <> 0",
                        [journal.pk],
                    )
            except IntegrityError as exc:  # the CHECK on balances that may not go negative
                raise InsufficientFunds(f"{reference!r} would overdraw an account; nothing was posted.") from exc
    journal.replayed = False
    return journal


def _check_currencies(legs: Sequence[Leg], locked: Mapping[int, LockedAccount]) -> None:
    for leg in legs:
        if leg.account.pk not in locked:
            raise InvalidAccount(f"Account {leg.account.pk} does not exist.")
        if locked[leg.account.pk].currency != leg.account.currency:
            raise CurrencyMismatch(f"Account {locked[leg.account.pk].name} is not in {leg.account.currency}.")


def _check_funds(deltas: Mapping[int, int], locked: Mapping[int, LockedAccount]) -> None:
    for account_id, delta in deltas.items():
        account = locked[account_id]
        if not account.allow_negative and account.balance_u + delta < 0:
            raise _insufficient_funds(
                name=account.name, currency=account.currency, balance_u=account.balance_u, delta_u=delta
            )


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


def operator_credit(*, user: User, amount_u: int, currency: str, actor: Actor, reference: str, reason: str) -> Journal:
    """Credit a player's available balance from `psp:manual`, once per reference, audited.

    Only the maker-checker (`ledger.decisions`) and bootstrap demo data call this: an operator's
    credit is a proposal that a second operator approves.
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
                reason=reason,
                data={"user": str(user.public_id), "amount_u": amount_u, "currency": currency},
            )
    return journal
