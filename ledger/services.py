"""Writes to the ledger: posting journals, transfers, reversals, and the accounts they use.

A posting locks every account it touches (ascending id, SELECT ... FOR UPDATE), inserts the journal
(its reference is unique forever, so a replay is recognised), checks and updates the stored
balances, and inserts the entries, all in one short transaction with no network I/O inside.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction

from ops.actors import Actor, actor_label, actor_user, require_actor, require_player

from .currencies import get_currency
from .errors import (
    AlreadyReversed,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    ReferenceConflict,
    UnbalancedJournal,
)
from .lock_objects import LockedAccount, accounts_lock, accounts_lock_from_query
from .models import Account, Entry, Journal

if TYPE_CHECKING:
    from accounts.models import User

MAX_AMOUNT_U = 10**17  # far below 2**63, so no sum of a few legs can overflow a bigint


@dataclass(frozen=True)
class Leg:
    """One side of a posting: an account and a signed amount in minor units."""

    account: Account
    amount_u: int


# --- Accounts ----------------------------------------------------------------------------------


def account_get_or_create(
    *, name: str, currency: str, kind: str, owner: Any = None, allow_negative: bool = False
) -> Account:
    """Return the account with this name and currency, creating it if needed."""
    get_currency(currency)
    account, _ = Account.objects.get_or_create(
        name=name,
        currency=currency,
        defaults={"kind": kind, "owner": owner, "allow_negative": allow_negative},
    )
    return account


def user_account(*, user: User, currency: str, kind: str = Account.Kind.USER_AVAILABLE) -> Account:
    """Return a player's available or held account in a currency; operators have none (NotAPlayer)."""
    require_player(user, active=False)
    suffix = {Account.Kind.USER_AVAILABLE: "available", Account.Kind.USER_HELD: "held"}[kind]
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
    if isinstance(amount_u, bool) or not isinstance(amount_u, int):
        raise InvalidAmount(f"Amounts are whole numbers of minor units, not {type(amount_u).__name__}.")
    if amount_u == 0:
        raise InvalidAmount("An amount of zero moves nothing.")
    if abs(amount_u) > MAX_AMOUNT_U:
        raise InvalidAmount(f"Amount {amount_u} is out of range.")
    return amount_u


def _validate_legs(legs: Sequence[Leg]) -> None:
    if len(legs) < 2:
        raise UnbalancedJournal("A journal needs at least two entries.")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        _validate_amount(leg.amount_u)
        if leg.account.pk is None:
            raise InvalidAmount("Every leg needs a saved account.")
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


FAST_WRITE = True  # one data-modifying CTE on PostgreSQL; tests also run the portable path


def _write_portable(journal: Journal, legs: Sequence[Leg], deltas: Mapping[int, int]) -> None:
    """Insert the journal and its entries and apply the balances with the ORM (any database)."""
    journal.save(force_insert=True)
    Entry.objects.bulk_create(
        Entry(journal=journal, account_id=leg.account.pk, currency=leg.account.currency, amount_u=leg.amount_u)
        for leg in legs
    )
    _apply_balances(deltas)


def _write_postgresql(journal: Journal, legs: Sequence[Leg], deltas: Mapping[int, int]) -> None:
    """Insert the journal and its entries and apply the balances in one statement (rows already locked)."""
    entry_rows = ", ".join(["(%s::bigint, %s::varchar, %s::bigint)"] * len(legs))
    delta_rows = ", ".join(["(%s::bigint, %s::bigint)"] * len(deltas))
    params: list[Any] = [
        journal.type,
        journal.reference,
        journal.fingerprint,
        json.dumps(journal.metadata),
        journal.actor_id,
        journal.actor_label,
        journal.reverses_id,
    ]
    for leg in legs:
        params.extend((leg.account.pk, leg.account.currency, leg.amount_u))
    for account_id, delta in deltas.items():
        params.extend((account_id, delta))
    update = (
        f", u AS (UPDATE ledger_account a SET balance_u = a.balance_u + d.delta "
        f"FROM (VALUES {delta_rows}) AS d(id, delta) WHERE a.id = d.id)"
        if deltas
        else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH j AS (INSERT INTO ledger_journal "  # noqa: S608 (placeholders only)
            "(type, reference, fingerprint, metadata, actor_id, actor_label, reverses_id) "
            "VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s) RETURNING id, created_at), "
            "e AS (INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u) "
            f"SELECT j.id, v.account_id, v.currency, v.amount_u FROM j, (VALUES {entry_rows}) "
            f"AS v(account_id, currency, amount_u)){update} "
            "SELECT id, created_at FROM j",
            params,
        )
        journal.pk, journal.created_at = cursor.fetchone()
    journal._state.adding = False
    journal._state.db = "default"


def _existing(reference: str, fingerprint: str) -> Journal:
    journal = Journal.objects.get(reference=reference)
    if journal.fingerprint != fingerprint:
        raise ReferenceConflict(
            f"Reference {reference!r} was already posted with different contents; nothing was posted."
        )
    journal.replayed = True  # type: ignore[attr-defined]
    return journal


# --- Postings ----------------------------------------------------------------------------------


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
    an overdraft of an account that may not go negative, or a reference reused with other contents.
    """
    require_actor(actor)
    _validate_legs(legs)
    if not reference or len(reference) > 200:
        raise InvalidAmount("A posting needs a reference of 1 to 200 characters.")
    fingerprint = _fingerprint(type, legs, reverses.pk if reverses else None)
    deltas: dict[int, int] = defaultdict(int)
    for leg in legs:
        deltas[leg.account.pk] += leg.amount_u
    try:
        with transaction.atomic():
            locked = accounts_lock(deltas)
            _check_currencies(legs, locked)
            _check_funds(deltas, locked)
            journal = Journal(
                type=type,
                reference=reference,
                fingerprint=fingerprint,
                metadata=dict(metadata or {}),
                actor=actor_user(actor),
                actor_label=actor_label(actor),
                reverses=reverses,
            )
            write = _write_postgresql if connection.vendor == "postgresql" and FAST_WRITE else _write_portable
            write(journal, legs, {k: v for k, v in deltas.items() if v != 0})
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
    journal.replayed = False  # type: ignore[attr-defined]
    return journal


@dataclass(frozen=True)
class LegQuery:
    """Legs given by a query of the caller's own tables: `SELECT account_id, amount_u FROM ...`.

    For postings with more legs than belong in Python (a round's payouts). The accounts must all be in
    the posting's currency; rows with a zero amount are skipped.
    """

    sql: str
    params: Sequence[Any]


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
    if connection.vendor != "postgresql" or not FAST_WRITE:
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
        _, foreign = accounts_lock_from_query(sql=leg_query.sql, params=params, extra_ids=fixed_ids, currency=currency)
        if foreign:
            raise CurrencyMismatch(f"{foreign} accounts in the legs of {reference!r} are not in {currency}.")
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
                with transaction.atomic():
                    cursor.execute(
                        "UPDATE ledger_account a SET balance_u = a.balance_u + d.delta"
                        " FROM (SELECT account_id, SUM(amount_u) AS delta FROM ledger_entry"
                        "       WHERE journal_id = %s GROUP BY account_id) d"
                        " WHERE a.id = d.account_id AND d.delta <> 0",
                        [journal.pk],
                    )
            except IntegrityError as exc:  # the CHECK on balances that may not go negative
                raise InsufficientFunds(f"{reference!r} would overdraw an account; nothing was posted.") from exc
    journal.replayed = False  # type: ignore[attr-defined]
    return journal


def _check_currencies(legs: Sequence[Leg], locked: Mapping[int, LockedAccount]) -> None:
    for leg in legs:
        if leg.account.pk not in locked:
            raise InvalidAmount(f"Account {leg.account.pk} does not exist.")
        if locked[leg.account.pk].currency != leg.account.currency:
            raise CurrencyMismatch(f"Account {locked[leg.account.pk].name} is not in {leg.account.currency}.")


def _check_funds(deltas: Mapping[int, int], locked: Mapping[int, LockedAccount]) -> None:
    for account_id, delta in deltas.items():
        account = locked[account_id]
        if not account.allow_negative and account.balance_u + delta < 0:
            currency = get_currency(account.currency)
            raise InsufficientFunds(
                f"{account.name} has {currency.format(account.balance_u)}; "
                f"this needs {currency.format(-delta)}. Nothing was posted.",
                extra={"account": account.name, "balance_u": account.balance_u, "required_u": -delta},
            )


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
    _validate_amount(amount_u)
    if amount_u < 0:
        raise InvalidAmount("A transfer moves a positive amount; swap the accounts instead.")
    if source.currency != destination.currency:
        raise CurrencyMismatch(f"{source.name} is in {source.currency}, {destination.name} in {destination.currency}.")
    if source.pk == destination.pk:
        raise InvalidAmount("A transfer needs two different accounts.")
    return journal_post(
        type=type,
        reference=reference,
        legs=[Leg(source, -amount_u), Leg(destination, amount_u)],
        actor=actor,
        metadata=metadata,
    )


def journal_reverse(*, journal: Journal, reference: str, actor: Actor, reason: str) -> Journal:
    """Post the exact opposite of a journal, linked to it; a journal is reversed at most once."""
    if not reason.strip():
        raise InvalidAmount("A reversal needs a reason.")
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
    _validate_amount(amount_u)
    if amount_u < 0:
        raise InvalidAmount("An operator credit is a positive amount.")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidAmount("An operator credit needs a reason.")
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
