"""Reads from the ledger: balances, wallets, statements, TVL.

A wallet row holds the ledger's own figures (available, held); apps that keep a player's money elsewhere in
the ledger add theirs with `register_wallet_component` (the rounds app: the stakes in unsettled rounds),
as they add invariants with `ledger.reconciliation.register_invariant`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connections, router
from django.db.models import CharField, QuerySet, Sum, Value

from .currencies import get_currency
from .models import Account, Entry


def account_balance(*, account: Account) -> int:
    """Return the stored balance of an account."""
    return Account.objects.values_list("balance_u", flat=True).get(pk=account.pk)


class WalletComponent(Protocol):
    """A registered wallet figure: a query of the player's ``(currency, amount_u)`` rows (one per currency).

    The ledger folds every component's query into the wallet's own (`UNION ALL`), so a wallet is one
    round trip however many apps add a figure. The query is compiled once per process with a stand-in
    id as ``user`` (an int, not a User: filter on it as ``player=user``, never read its attributes) and
    must use it in a filter, where the ledger puts each player's id.
    """

    def __call__(self, *, user: Any) -> QuerySet[Any, tuple[str, int]]: ...


_wallet_components: list[tuple[str, WalletComponent]] = []


def register_wallet_component(name: str) -> Callable[[WalletComponent], WalletComponent]:
    """Register an app's figure shown in every wallet row as ``name`` (0 where the app has none)."""

    def decorator(fn: WalletComponent) -> WalletComponent:
        if name not in [n for n, _ in _wallet_components]:
            _wallet_components.append((name, fn))
        return fn

    return decorator


_COMPONENT_PREFIX = "component:"
_TAG = CharField()  # the output type of each component's tag column
_USER_SENTINEL = -7_310_919_273_561  # no user has this id: it marks the player's id in the compiled wallet query


@functools.lru_cache(maxsize=8)
def _wallet_query(alias: str, names: tuple[str, ...]) -> tuple[str, tuple[str | int, ...], tuple[int, ...]]:
    """The wallet query compiled once per process: (SQL, parameters, positions of the player's id in them).

    The query is the same for every player but for their id, so it is built through the ORM (the
    accounts and each registered component, `UNION ALL`) for a sentinel id and only the id is swapped
    per request: the ORM's cost of building and compiling it (most of a wallet read's Python) is paid
    once. Keyed by the registered component names, so a component registered later gets a new query.
    """
    rows: QuerySet[Any, tuple[str, int, str]] = (
        Account.objects.filter(owner=_USER_SENTINEL).order_by().values_list("currency", "balance_u", "kind")
    )
    parts = [
        component(user=_USER_SENTINEL).annotate(_wallet_part=Value(_COMPONENT_PREFIX + name, output_field=_TAG))
        for name, component in _wallet_components
        if name in names
    ]
    if parts:
        rows = rows.union(*parts, all=True)
    sql, params = rows.query.get_compiler(using=alias).as_sql()
    positions = tuple(i for i, param in enumerate(params) if param == _USER_SENTINEL)
    if len(positions) < 1 + len(parts):  # every part filters on the player
        raise RuntimeError("The wallet query does not filter every part on the player.")
    return sql, tuple(params), positions


def user_wallet(*, user: Any) -> list[dict[str, Any]]:
    """Return the player's balances per currency: available, held, and each registered component.

    One query (see `_wallet_query`): the player's accounts (currency, balance, kind) and each
    component's (currency, amount) rows tagged with the component's name, as one `UNION ALL`.
    """
    names = tuple(name for name, _ in _wallet_components)
    alias = router.db_for_read(Account)
    sql, template, positions = _wallet_query(alias, names)
    params: list[str | int] = list(template)
    for position in positions:
        params[position] = user.pk
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    wallet: dict[str, dict[str, Any]] = defaultdict(lambda: {"available_u": 0, "held_u": 0, **dict.fromkeys(names, 0)})
    for currency, amount, tag in fetched:
        if tag.startswith(_COMPONENT_PREFIX):
            key = tag.removeprefix(_COMPONENT_PREFIX)
        else:
            key = "available_u" if tag == Account.Kind.USER_AVAILABLE else "held_u"
        wallet[currency][key] = int(amount or 0)  # a UNION with a SUM is numeric: Decimal, integral
    return [{"currency": code, "exponent": get_currency(code).exponent, **wallet[code]} for code in sorted(wallet)]


def user_statement(*, user: Any, currency: str | None = None) -> QuerySet[Entry]:
    """Return the entries on the player's own accounts, newest first."""
    entries = Entry.objects.filter(account__owner=user).select_related("journal", "account")
    if currency:
        entries = entries.filter(currency=currency)
    return entries.order_by("-id")


@dataclass(frozen=True)
class Tvl:
    """The house manual's TVL: Locked (round pools), Total Cash (available), Pending Withdrawals (held)."""

    currency: str
    locked_u: int
    total_cash_u: int
    pending_withdrawals_u: int
    house_u: int


def tvl(*, currency: str) -> Tvl:
    """Sum the stored balances by kind for one currency."""
    get_currency(currency)
    sums = dict(
        Account.objects.filter(currency=currency)
        .values("kind")
        .annotate(total=Sum("balance_u"))
        .values_list("kind", "total")
    )
    return Tvl(
        currency=currency,
        locked_u=sums.get(Account.Kind.ROUND_POOL, 0) or 0,
        total_cash_u=sums.get(Account.Kind.USER_AVAILABLE, 0) or 0,
        pending_withdrawals_u=sums.get(Account.Kind.USER_HELD, 0) or 0,
        house_u=sums.get(Account.Kind.HOUSE, 0) or 0,
    )


def currencies_in_use() -> list[str]:
    """Return the currencies that have at least one account."""
    return sorted(set(Account.objects.values_list("currency", flat=True)))


# --- For reports and drills (the SQL on ledger tables stays in the ledger) -----------------------

RESTORE_CHECKS: tuple[tuple[str, str], ...] = (
    ("journals", "SELECT COUNT(*) FROM ledger_journal"),
    ("entries", "SELECT COUNT(*) FROM ledger_entry"),
    ("accounts", "SELECT COUNT(*) FROM ledger_account"),
    ("balance sum", "SELECT COALESCE(SUM(ABS(balance_u)), 0) FROM ledger_account"),
    (
        "unbalanced batches",
        "SELECT COUNT(*) FROM (SELECT ref_id FROM ledger_entries GROUP BY ref_id HAVING SUM(amount_u) != 0) b",
    ),
)
"""Figures a restored copy of the ledger must reproduce exactly (`db_restore_drill` runs them on both)."""


def journal_flows(*, start: Any, end: Any, using: str = "default") -> list[tuple[str, str, int, int]]:
    """Per journal type and currency between two instants: (type, currency, journals, money moved)."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT j.type, e.currency, COUNT(DISTINCT j.id), SUM(CASE WHEN e.amount_u > 0 THEN e.amount_u ELSE 0 END) "
            "FROM ledger_journal j JOIN ledger_entry e ON e.journal_id = j.id "
            "WHERE j.created_at >= %s AND j.created_at < %s GROUP BY j.type, e.currency ORDER BY j.type, e.currency",
            [start, end],
        )
        return [(t, c, int(n), int(total or 0)) for t, c, n, total in cursor.fetchall()]


def house_settlement_fees(*, start: Any, end: Any, using: str = "default") -> list[tuple[str, int]]:
    """The house's settlement income per currency between two instants (the manual's fees query)."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT currency, SUM(amount_u) FROM ledger_entries WHERE account = 'house' AND ref_type = 'settlement' "
            "AND ts >= %s AND ts < %s GROUP BY currency",
            [start, end],
        )
        return [(c, int(total)) for c, total in cursor.fetchall()]


def balances_of_kind(*, kind: str) -> list[tuple[int, str, str, int]]:
    """(id, name, currency, balance) of every account of one kind, e.g. the round pools."""
    return list(Account.objects.filter(kind=kind).values_list("id", "name", "currency", "balance_u"))


def tvl_by_currency() -> dict[str, Tvl]:
    """Return `tvl()` for every currency that has an account, from one grouped query."""
    sums: dict[str, dict[str, int]] = defaultdict(dict)
    for currency, kind, total in (
        Account.objects.values("currency", "kind")
        .annotate(total=Sum("balance_u"))
        .values_list("currency", "kind", "total")
    ):
        sums[currency][kind] = total or 0
    return {
        currency: Tvl(
            currency=currency,
            locked_u=by_kind.get(Account.Kind.ROUND_POOL, 0),
            total_cash_u=by_kind.get(Account.Kind.USER_AVAILABLE, 0),
            pending_withdrawals_u=by_kind.get(Account.Kind.USER_HELD, 0),
            house_u=by_kind.get(Account.Kind.HOUSE, 0),
        )
        for currency, by_kind in sorted(sums.items())
    }
