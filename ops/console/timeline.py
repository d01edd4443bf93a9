"""Reads: one timeline, newest first, of everything that concerns a player, a withdrawal or a round.

Each kind of record (ledger entries, deposits, webhook events, withdrawals and their transitions,
payout attempts, bets, audit records...) is one query ordered newest first and read lazily; the
streams are merged with `heapq.merge`, so a page reads only the rows it shows (plus one chunk per
kind) however long the history, and the CSV export streams the same merge to the end.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet

from ledger.money import format_money_safe

if TYPE_CHECKING:
    from accounts.models import User
    from ledger.models import Entry
    from ops.models import AuditRecord, Proposal
    from payouts.models import PayoutAttempt, PayoutEvent, Withdrawal
    from rounds.models import Bet, OracleObservation, Round
    from webhooks.models import Deposit, WebhookEvent

KINDS = {
    "entry": "Ledger entry",
    "deposit": "Deposit",
    "webhook": "Webhook event",
    "withdrawal": "Withdrawal / transition",
    "payout_attempt": "Payout attempt",
    "payout_event": "Payout webhook",
    "approval": "Decision (maker-checker)",
    "bet": "Bet",
    "round": "Round / oracle",
    "audit": "Audit record",
}
CHUNK = 200


@dataclass(frozen=True)
class TimelineRow:
    """One thing that happened, for people (and for the CSV)."""

    at: datetime
    kind: str
    object_label: str
    summary: str
    amount_u: int | None = None
    currency: str = ""
    actor: str = ""
    url_name: str = ""
    object_pk: Any = None
    order: int = 0  # tie-break within one instant: the row id

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    @property
    def amount(self) -> str:
        return "" if self.amount_u is None else format_money_safe(self.amount_u, self.currency)


@dataclass(frozen=True)
class TimelineFilter:
    kinds: frozenset[str] = frozenset(KINDS)
    day_from: date | None = None
    day_to: date | None = None  # inclusive

    def window(self, queryset: QuerySet[Any], field: str) -> QuerySet[Any]:
        """Restrict a queryset to the UTC days of the filter."""
        if self.day_from:
            queryset = queryset.filter(**{f"{field}__gte": datetime.combine(self.day_from, time.min, tzinfo=UTC)})
        if self.day_to:
            end = datetime.combine(self.day_to + timedelta(days=1), time.min, tzinfo=UTC)
            queryset = queryset.filter(**{f"{field}__lt": end})
        return queryset


Source = tuple[str, QuerySet[Any], str, Callable[[Any], TimelineRow]]


def _stream(flt: TimelineFilter, sources: Iterable[Source]) -> Iterator[TimelineRow]:
    streams = []
    for kind, queryset, field, to_row in sources:
        if kind not in flt.kinds:
            continue
        ordered = flt.window(queryset, field).order_by(f"-{field}", "-pk")
        streams.append(map(to_row, ordered.iterator(chunk_size=CHUNK)))
    return heapq.merge(*streams, key=lambda row: (row.at, row.order), reverse=True)


def timeline_page(rows: Iterator[TimelineRow], *, limit: int) -> tuple[list[TimelineRow], bool]:
    """Return the first `limit` rows and whether there were more."""
    page = list(islice(rows, limit + 1))
    return page[:limit], len(page) > limit


# --- Rows, one function per kind -------------------------------------------------------------------


def _entry(e: Entry) -> TimelineRow:
    return TimelineRow(
        e.created_at,
        "entry",
        f"entry {e.pk}",
        f"{e.journal.type} {e.journal.reference} on {e.account.name}",
        e.amount_u,
        e.currency,
        e.journal.actor_label,
        "admin:ledger_journal_change",
        e.journal_id,
        e.pk,
    )


def _deposit(d: Deposit) -> TimelineRow:
    return TimelineRow(
        d.created_at,
        "deposit",
        f"deposit {d.public_id}",
        f"{d.provider} {d.reference}: {d.status}",
        d.amount_u,
        d.currency,
        d.user.email,
        "admin:webhooks_deposit_change",
        d.pk,
        d.pk,
    )


def _webhook(w: WebhookEvent) -> TimelineRow:
    return TimelineRow(
        w.received_at,
        "webhook",
        f"webhook event {w.pk}",
        f"{w.provider} {w.event_type or '?'} {w.event_id}: {w.status}" + (f" ({w.reason})" if w.reason else ""),
        None,
        "",
        w.provider,
        "admin:webhooks_webhookevent_change",
        w.pk,
        w.pk,
    )


def _withdrawal(w: Withdrawal) -> TimelineRow:
    return TimelineRow(
        w.created_at,
        "withdrawal",
        f"withdrawal {w.pk}",
        f"requested via {w.provider}; now {w.state}",
        w.amount_u,
        w.currency,
        w.user.email,
        "admin:payouts_withdrawal_change",
        w.pk,
        w.pk,
    )


def _attempt(a: PayoutAttempt) -> TimelineRow:
    return TimelineRow(
        a.started_at,
        "payout_attempt",
        f"payout attempt {a.pk}",
        f"withdrawal {a.withdrawal_id} {a.provider} {a.idempotency_key}: {a.outcome}"
        + (f" {a.psp_reference}" if a.psp_reference else ""),
        a.withdrawal.amount_u,
        a.withdrawal.currency,
        "payout worker",
        "admin:payouts_payoutattempt_change",
        a.pk,
        a.pk,
    )


def _payout_event(p: PayoutEvent) -> TimelineRow:
    return TimelineRow(
        p.received_at,
        "payout_event",
        f"payout webhook {p.pk}",
        f"{p.provider} {p.event_type} {p.event_id}: {p.result}",
        None,
        "",
        p.provider,
        "admin:payouts_payoutevent_change",
        p.pk,
        p.pk,
    )


def _proposal(p: Proposal) -> TimelineRow:
    detail = ", ".join(f"{k}={v}" for k, v in p.payload.items())
    decided = f"; {p.get_state_display().lower()} by {p.decided_by.email}" if p.decided_by is not None else ""
    return TimelineRow(
        p.created_at,
        "approval",
        f"proposal {p.pk}",
        f"{p.kind} {detail} ({p.state}{decided}): {p.reason}",
        None,
        "",
        p.proposed_by.email,
        "admin:ops_proposal_change",
        p.pk,
        p.pk,
    )


def _bet(b: Bet) -> TimelineRow:
    return TimelineRow(
        b.placed_at,
        "bet",
        f"bet {b.bet_id}",
        f"round {b.round.code} {b.side}"
        + ("" if b.payout_u is None else f"; paid {format_money_safe(b.payout_u, b.round.currency)}"),
        b.stake_u,
        b.round.currency,
        b.player.email,
        "admin:rounds_bet_change",
        b.pk,
        b.pk,
    )


def _audit(r: AuditRecord) -> TimelineRow:
    kind = "withdrawal" if r.object_type == "payouts.withdrawal" else "audit"
    moved = f" {r.from_state} → {r.to_state}" if (r.from_state or r.to_state) else ""
    return TimelineRow(
        r.created_at,
        kind,
        f"{r.object_type} {r.object_id}",
        f"{r.action}{moved}" + (f": {r.reason}" if r.reason else ""),
        None,
        "",
        r.actor_label,
        "admin:ops_auditrecord_change",
        r.pk,
        r.pk,
    )


def _observation(o: OracleObservation) -> TimelineRow:
    return TimelineRow(
        o.fetched_at,
        "round",
        f"oracle observation {o.pk}",
        f"{o.kind} {o.source}: " + (o.price or f"error {o.error}"),
        None,
        "",
        o.entered_by.email if o.entered_by else "oracle",
        "admin:rounds_oracleobservation_change",
        o.pk,
        o.pk,
    )


# --- Timelines ---------------------------------------------------------------------------------------


def player_timeline(*, user: User, flt: TimelineFilter) -> Iterator[TimelineRow]:
    """Everything about one player, newest first."""
    from ledger.models import Entry
    from ops.models import AuditRecord
    from payouts.models import PayoutAttempt, Withdrawal
    from rounds.models import Bet
    from webhooks.models import Deposit, WebhookEvent

    withdrawal_ids = [str(pk) for pk in Withdrawal.objects.filter(user=user).values_list("pk", flat=True)]
    audit = AuditRecord.objects.filter(
        Q(actor=user)
        | Q(object_type=user._meta.label_lower, object_id=str(user.pk))
        | Q(object_type="payouts.withdrawal", object_id__in=withdrawal_ids)
    )
    return _stream(
        flt,
        [
            (
                "entry",
                Entry.objects.filter(account__owner=user).select_related("journal", "account"),
                "created_at",
                _entry,
            ),
            ("deposit", Deposit.objects.filter(user=user).select_related("user"), "created_at", _deposit),
            ("webhook", WebhookEvent.objects.filter(deposit__user=user), "received_at", _webhook),
            ("withdrawal", Withdrawal.objects.filter(user=user).select_related("user"), "created_at", _withdrawal),
            ("withdrawal", audit.filter(object_type="payouts.withdrawal"), "created_at", _audit),
            (
                "payout_attempt",
                PayoutAttempt.objects.filter(withdrawal__user=user).select_related("withdrawal"),
                "started_at",
                _attempt,
            ),
            ("bet", Bet.objects.filter(player=user).select_related("round", "player"), "placed_at", _bet),
            ("audit", audit.exclude(object_type="payouts.withdrawal"), "created_at", _audit),
        ],
    )


def withdrawal_timeline(*, withdrawal: Withdrawal, flt: TimelineFilter) -> Iterator[TimelineRow]:
    """Everything about one withdrawal, newest first: request, transitions, journals, PSP calls and webhooks."""
    from ledger.models import Entry
    from ops.models import AuditRecord, Proposal
    from payouts.models import PayoutAttempt, PayoutEvent, Withdrawal

    return _stream(
        flt,
        [
            (
                "withdrawal",
                Withdrawal.objects.filter(pk=withdrawal.pk).select_related("user"),
                "created_at",
                _withdrawal,
            ),
            (
                "withdrawal",
                AuditRecord.objects.filter(object_type="payouts.withdrawal", object_id=str(withdrawal.pk)),
                "created_at",
                _audit,
            ),
            (
                "entry",
                Entry.objects.filter(journal__reference__startswith=f"withdrawal:{withdrawal.pk}:").select_related(
                    "journal", "account"
                ),
                "created_at",
                _entry,
            ),
            (
                "payout_attempt",
                PayoutAttempt.objects.filter(withdrawal=withdrawal).select_related("withdrawal"),
                "started_at",
                _attempt,
            ),
            ("payout_event", PayoutEvent.objects.filter(withdrawal=withdrawal), "received_at", _payout_event),
            (
                "approval",
                Proposal.objects.filter(subject=f"payouts.withdrawal:{withdrawal.pk}").select_related(
                    "proposed_by", "decided_by"
                ),
                "created_at",
                _proposal,
            ),
        ],
    )


def round_timeline(*, round_obj: Round, flt: TimelineFilter) -> Iterator[TimelineRow]:
    """Everything about one round, newest first: audit trail, oracle, forced results, bets, pool entries."""
    from ledger.models import Entry
    from ops.models import AuditRecord, Proposal
    from rounds.accounts import round_pool_stripes
    from rounds.models import Bet, OracleObservation

    return _stream(
        flt,
        [
            (
                "audit",
                AuditRecord.objects.filter(object_type="rounds.round", object_id=str(round_obj.pk)),
                "created_at",
                _audit,
            ),
            (
                "round",
                OracleObservation.objects.filter(round=round_obj).select_related("entered_by"),
                "fetched_at",
                _observation,
            ),
            (
                "approval",
                Proposal.objects.filter(subject=f"rounds.round:{round_obj.code}").select_related(
                    "proposed_by", "decided_by"
                ),
                "created_at",
                _proposal,
            ),
            ("bet", Bet.objects.filter(round=round_obj).select_related("round", "player"), "placed_at", _bet),
            (
                "entry",
                Entry.objects.filter(  # the pool and its stripes (bets before lock, `rounds.pools`)
                    Q(account_id=round_obj.pool_account_id)
                    | Q(account__in=round_pool_stripes(code=round_obj.code, currency=round_obj.currency))
                ).select_related("journal", "account"),
                "created_at",
                _entry,
            ),
        ],
    )


CSV_HEADER = ["at_utc", "kind", "object", "summary", "amount_u", "currency", "amount", "actor"]


def _text_cell(value: str) -> str:
    """Keep free text (reasons, emails) from being read as a spreadsheet formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def timeline_csv_rows(rows: Iterable[TimelineRow]) -> Iterator[list[str]]:
    """The CSV export: a header, then one line per row; amounts both exact (minor units) and for people."""
    yield CSV_HEADER
    for row in rows:
        yield [
            row.at.astimezone(UTC).isoformat(),
            row.kind,
            _text_cell(row.object_label),
            _text_cell(row.summary),
            "" if row.amount_u is None else str(row.amount_u),
            row.currency,
            row.amount,
            _text_cell(row.actor),
        ]
