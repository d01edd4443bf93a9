"""The ledger invariants (DESIGN.md §3), recomputed from the rows.

Core invariants live here; apps that keep money in the ledger register their own (held balances
equal withdrawals in held states, round pools equal unsettled stakes) with `register_invariant`.

A recorded run that finds a breach turns `payout_freeze` on in the same transaction that records it
(`reconciliation_run`); the freeze then stays on until two operators clear it (`ops.switches`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from ops.actors import SystemActor
from ops.models import Switch
from ops.switches import switch_trip

from .models import LedgerBreach, ReconciliationRun


@dataclass(frozen=True)
class Breach:
    """One broken invariant."""

    invariant: str
    currency: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.currency}: {self.detail}"


InvariantCheck = Callable[[], Iterable[Breach]]
_extra_checks: list[tuple[str, InvariantCheck]] = []


def register_invariant(name: str) -> Callable[[InvariantCheck], InvariantCheck]:
    """Register an app's invariant check (a function yielding Breach rows)."""

    def decorator(fn: InvariantCheck) -> InvariantCheck:
        if name not in [n for n, _ in _extra_checks]:
            _extra_checks.append((name, fn))
        return fn

    return decorator


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def check_journals_balance() -> Iterable[Breach]:
    """Every journal sums to zero per currency and has at least two entries."""
    for journal_id, reference, currency, total in _rows(
        "SELECT j.id, j.reference, e.currency, SUM(e.amount_u) FROM ledger_journal j "
        "JOIN ledger_entry e ON e.journal_id = j.id GROUP BY j.id, j.reference, e.currency "
        "HAVING SUM(e.amount_u) <> 0"
    ):
        yield Breach("journal_sums_to_zero", currency, f"journal {journal_id} ({reference}) sums to {int(total):+d}")
    for journal_id, reference, count in _rows(
        "SELECT j.id, j.reference, COUNT(e.id) FROM ledger_journal j "
        "LEFT JOIN ledger_entry e ON e.journal_id = j.id GROUP BY j.id, j.reference HAVING COUNT(e.id) < 2"
    ):
        yield Breach("journal_has_two_entries", "-", f"journal {journal_id} ({reference}) has {count} entries")


def check_balances_match_entries() -> Iterable[Breach]:
    """Each account's stored balance equals the sum of its entries."""
    for name, currency, stored, summed in _rows(
        "SELECT a.name, a.currency, a.balance_u, COALESCE(s.total, 0) FROM ledger_account a "
        "LEFT JOIN (SELECT account_id, SUM(amount_u) AS total FROM ledger_entry GROUP BY account_id) s "
        "ON s.account_id = a.id WHERE a.balance_u <> COALESCE(s.total, 0)"
    ):
        yield Breach("balance_equals_entries", currency, f"{name} stores {stored} but its entries sum to {int(summed)}")


def check_currency_sums_to_zero() -> Iterable[Breach]:
    """Per currency, the balances of all accounts sum to zero."""
    for currency, total in _rows(
        "SELECT currency, SUM(balance_u) FROM ledger_account GROUP BY currency HAVING SUM(balance_u) <> 0"
    ):
        yield Breach("currency_sums_to_zero", currency, f"balances sum to {int(total):+d}")


def check_no_forbidden_negative() -> Iterable[Breach]:
    """No account that may not go negative is negative."""
    for name, currency, balance in _rows(
        "SELECT name, currency, balance_u FROM ledger_account WHERE NOT allow_negative AND balance_u < 0"
    ):
        yield Breach("no_negative_balance", currency, f"{name} is {balance}")


def check_entry_currency() -> Iterable[Breach]:
    """Every entry is in its account's currency."""
    for entry_id, name, entry_currency, account_currency in _rows(
        "SELECT e.id, a.name, e.currency, a.currency FROM ledger_entry e "
        "JOIN ledger_account a ON a.id = e.account_id WHERE e.currency <> a.currency"
    ):
        yield Breach("entry_currency", entry_currency, f"entry {entry_id} on {name} ({account_currency})")


def check_no_staged_legs_left() -> Iterable[Breach]:
    """No staged leg outlives its transaction (`ledger_posting_leg`: the posting function deletes its rows).

    Seen from another transaction, the table is empty: rows here were staged and committed without being
    posted (never posted later either: only rows of the posting's own transaction count).
    """
    for reference, legs in _rows(
        "SELECT posting_reference, count(*) FROM ledger_posting_leg GROUP BY posting_reference ORDER BY 1"
    ):
        yield Breach("no_staged_legs_left", "-", f"{legs} legs staged under {reference!r} outlived their transaction")


CORE_CHECKS: list[tuple[str, InvariantCheck]] = [
    ("journal_sums_to_zero", check_journals_balance),
    ("balance_equals_entries", check_balances_match_entries),
    ("currency_sums_to_zero", check_currency_sums_to_zero),
    ("no_negative_balance", check_no_forbidden_negative),
    ("entry_currency", check_entry_currency),
    ("no_staged_legs_left", check_no_staged_legs_left),
]


def ledger_breaches() -> list[Breach]:
    """Run every invariant check and return what is broken (empty when all hold)."""
    breaches: list[Breach] = []
    for _name, check in CORE_CHECKS + _extra_checks:
        breaches.extend(check())
    return breaches


def invariant_names() -> list[str]:
    """Return the names of every invariant checked."""
    return [name for name, _ in CORE_CHECKS + _extra_checks]


RECONCILIATION = SystemActor("reconciliation")


def reconciliation_run() -> tuple[ReconciliationRun, list[Breach]]:
    """Check every invariant and record the run and its breaches (counted by ledger_imbalance_total).

    A breach turns `payout_freeze` on, audited with the failed invariants' names, in this same transaction:
    the breach is never recorded without the freeze, nor the freeze without the breach.
    """
    with transaction.atomic():
        run = ReconciliationRun.objects.create()
        breaches = ledger_breaches()
        LedgerBreach.objects.bulk_create(
            LedgerBreach(run=run, invariant=b.invariant, currency=b.currency, detail=b.detail) for b in breaches
        )
        if breaches:
            invariants = sorted({b.invariant for b in breaches})
            switch_trip(
                name=Switch.Name.PAYOUT_FREEZE,
                invariants=invariants,
                reason=f"reconciliation run {run.pk}: {len(breaches)} breach(es) of {', '.join(invariants)}",
                actor=RECONCILIATION,
                data={"run": run.pk, "breaches": [str(b) for b in breaches[:20]]},
            )
        run.finished_at = timezone.now()
        run.ok = not breaches
        run.breach_count = len(breaches)
        run.save(update_fields=["finished_at", "ok", "breach_count"])
    return run, breaches
