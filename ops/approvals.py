"""Maker-checker: one mechanism for every manual money decision.

An operator proposes a decision (approve a withdrawal, resolve a failed payout, adjust the ledger,
force a round's result, credit a player); a *different* operator approves it, and only then does it
happen, in the approver's transaction, with both names in the audit log and each operator's own reason
on their own row (the second operator must give one: `checker_reason`). Below the four-eyes
threshold of its currency a decision needs one operator and is applied when proposed; a currency with
no threshold, and a kind marked `always_two`, always needs two. Nobody decides on their own account.

Products register their kinds (`register_decision`) from their AppConfig.ready; this module knows
nothing of withdrawals or rounds. Lock order: the subject first (the kind's `lock`), then the
proposal row, whichever way the decision arrives (the subject's page or the proposals queue).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone

from .actors import Actor, require_operator
from .audit import audit_record
from .errors import ApplicationError
from .models import Proposal

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from accounts.models import User


class DecisionRefused(ApplicationError):
    code = "approvals/refused"
    title = "Decision refused"
    status = 409


class SecondOperatorRequired(DecisionRefused):
    code = "approvals/second-operator-required"
    title = "A second operator must approve"


class OwnAccount(DecisionRefused):
    code = "approvals/own-account"
    title = "Nobody decides on their own account"
    status = 403


class ProposalNotFound(DecisionRefused):
    code = "approvals/not-found"
    title = "No such proposal"
    status = 404


class ReasonRequired(DecisionRefused):
    code = "approvals/reason-required"
    title = "A reason is required"
    status = 400


@dataclass(frozen=True)
class DecisionKind:
    """One kind of manual decision: who may make it, how to lock its subject, and how to apply it."""

    name: str
    label: str  # what the operator does, e.g. "approve a withdrawal"
    permission: str  # both the maker and the checker need it
    lock: Callable[[str], Any]  # lock the subject's rows (first, in the acting transaction)
    apply: Callable[[Proposal, User], dict[str, Any]]  # make it happen; returns what to record
    always_two: bool = False
    self_approval_in_development: bool = False  # operator credits on a developer's machine


_KINDS: dict[str, DecisionKind] = {}


def register_decision(kind: DecisionKind) -> None:
    """Offer a kind of decision to the maker-checker (called from a product's AppConfig.ready)."""
    _KINDS[kind.name] = kind


def decision_kind(name: str) -> DecisionKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise DecisionRefused(f"Unknown kind of decision {name!r}.") from None


# --- Thresholds ----------------------------------------------------------------------------


_currency_exponents: dict[str, int] = {}


def register_currencies(exponents: Mapping[str, int]) -> None:
    """Tell maker-checker which currencies exist and their exponents (the ledger does, in its `ready`).

    The kernel sits below the ledger and so cannot import its currency table; thresholds in major units
    are converted with these exponents, and a threshold for a currency nobody registered is refused.
    """
    _currency_exponents.update(exponents)


def parse_thresholds(raw: Mapping[str, Any]) -> dict[str, int]:
    """Convert `{"USD": "10000.00", "USDC": "10000"}` (major units) to minor units, exactly.

    Raises ImproperlyConfigured for an unknown currency, a negative or non-numeric amount, or more
    decimals than the currency has.
    """
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("FOUR_EYES_THRESHOLDS must be a JSON object of currency -> amount.")
    thresholds: dict[str, int] = {}
    for code, value in raw.items():
        exponent = _currency_exponents.get(code)
        if exponent is None:
            raise ImproperlyConfigured(f"FOUR_EYES_THRESHOLDS: unknown currency {code!r}.")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ImproperlyConfigured(f'FOUR_EYES_THRESHOLDS[{code}] must be a string like "10000.00".')
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise ImproperlyConfigured(f"FOUR_EYES_THRESHOLDS[{code}]: {value!r} is not an amount.") from None
        if not amount.is_finite() or amount < 0:
            raise ImproperlyConfigured(f"FOUR_EYES_THRESHOLDS[{code}]: {value!r} is not a positive amount.")
        minor = amount.scaleb(exponent)
        if minor != minor.to_integral_value():
            raise ImproperlyConfigured(f"FOUR_EYES_THRESHOLDS[{code}]: {value!r} has more than {exponent} decimals.")
        thresholds[code] = int(minor)
    return thresholds


def four_eyes_thresholds() -> dict[str, int]:
    """The configured thresholds in minor units; a currency missing here always needs two operators."""
    return parse_thresholds(settings.FOUR_EYES_THRESHOLDS)


def needs_second_operator(*, kind: DecisionKind, amounts: Mapping[str, int]) -> bool:
    """Return whether a decision moving these amounts (minor units per currency) needs two people."""
    if kind.always_two:
        return True
    thresholds = four_eyes_thresholds()
    for currency, amount_u in amounts.items():
        threshold = thresholds.get(currency)
        if threshold is None or abs(amount_u) > threshold:
            return True
    return False


# --- Decisions -----------------------------------------------------------------------------


def _reason(reason: object, what: str = "this decision") -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRequired(f"Give a reason for {what}; it is kept in the audit log. Nothing was changed.")
    return reason.strip()


def _checker_reason_given(reason: object, proposal: Proposal) -> str:
    """The second operator's own reason: required, never the proposer's nor a default."""
    return _reason(reason, f"approving proposal {proposal.pk} as the second operator (your own reason)")


def checker_reason(proposal: Proposal) -> str:
    """The reason of the operator applying a proposal, for the audit rows a kind's `apply` writes as them.

    The maker-checker sets it before calling `apply`: the second operator's own reason, or the proposer's
    when one operator sufficed. Those rows carry the proposer's reason too, as `proposal_reason` in data.
    """
    return proposal.decision_reason or proposal.reason


def _check_parties(*, operator: User, parties: Iterable[int]) -> None:
    if operator.pk in set(parties):
        raise OwnAccount("Nobody may decide on a matter that moves their own money. Nothing was changed.")


def decision_propose(
    *,
    kind: str,
    subject: str,
    payload: Mapping[str, Any],
    amounts: Mapping[str, int],
    parties: Iterable[int],
    reason: str,
    acting_user: object,
    evidence: str = "",
    always_two: bool = False,
    default_reason: str = "",
) -> Proposal:
    """Propose a decision; apply it now when one operator suffices.

    `always_two` asks for a second operator whatever the amounts (the caller knows why this one does,
    e.g. a payout confirmed as sent that the PSP never said was paid). `default_reason` is recorded when
    the proposer gives none (a withdrawal's approval); a second operator always gives their own.

    If another operator already proposed the same decision on the same subject, this is the second
    pair of eyes: it is applied, with this operator's reason on their row. The same operator twice is
    refused; a different pending decision on the subject must be approved or rejected first.
    """
    spec = decision_kind(kind)
    operator = require_operator(acting_user, permission=spec.permission, what=spec.label)
    given = reason.strip() if isinstance(reason, str) else ""
    reason = _reason(given or default_reason)
    parties = sorted({int(p) for p in parties})
    _check_parties(operator=operator, parties=parties)
    with transaction.atomic():
        spec.lock(subject)
        pending = (
            Proposal.objects.select_for_update()
            .filter(kind=kind, subject=subject, state=Proposal.State.PENDING)
            .first()
        )
        if pending is not None:
            if pending.payload != dict(payload):
                raise DecisionRefused(
                    f"Proposal {pending.pk} by {pending.proposed_by.email} ({_describe(pending)}) is pending on "
                    f"this; approve or reject it first. Nothing was changed.",
                    extra={"proposal_id": pending.pk},
                )
            return _approve(spec=spec, proposal=pending, operator=operator, reason=given)
        two = always_two or needs_second_operator(kind=spec, amounts=amounts)
        try:
            with transaction.atomic():
                proposal = Proposal.objects.create(
                    kind=kind,
                    subject=subject,
                    payload=dict(payload),
                    amounts=dict(amounts),
                    parties=parties,
                    needs_second_operator=two,
                    reason=reason,
                    evidence=(evidence or "").strip(),
                    proposed_by=operator,
                )
        except IntegrityError as exc:  # another operator proposed at the same instant
            raise DecisionRefused("Another decision on this was proposed meanwhile; reload and retry.") from exc
        audit_record(
            actor=operator,
            action="approvals.propose",
            obj=proposal,
            reason=reason,
            to_state=proposal.state,
            data={
                "kind": kind,
                "subject": subject,
                "payload": proposal.payload,
                "amounts": proposal.amounts,
                "needs_second_operator": two,
                "evidence": proposal.evidence,
            },
        )
        if not two:
            _apply(spec=spec, proposal=proposal, checker=operator, reason=reason)
    return proposal


def decision_approve(*, proposal_id: int, acting_user: object, reason: str = "") -> Proposal:
    """A second operator approves a pending proposal with their own reason; it is applied in this transaction.

    Without a reason it is refused (`ReasonRequired`) and nothing changes: the audit row of the approval
    carries the approver's reason, the proposal's row the proposer's.
    """
    found = Proposal.objects.filter(pk=proposal_id).values_list("kind", "subject").first()
    if found is None:
        raise ProposalNotFound(f"No proposal {proposal_id}.")
    spec = decision_kind(found[0])
    operator = require_operator(acting_user, permission=spec.permission, what=spec.label)
    with transaction.atomic():
        spec.lock(found[1])
        proposal = Proposal.objects.select_for_update().get(pk=proposal_id)
        return _approve(spec=spec, proposal=proposal, operator=operator, reason=reason)


def decision_reject(*, proposal_id: int, acting_user: object, reason: str) -> Proposal:
    """Reject a pending proposal (any operator who may make that decision, the proposer included)."""
    found = Proposal.objects.filter(pk=proposal_id).values_list("kind", "subject").first()
    if found is None:
        raise ProposalNotFound(f"No proposal {proposal_id}.")
    spec = decision_kind(found[0])
    operator = require_operator(acting_user, permission=spec.permission, what=spec.label)
    reason = _reason(reason, "a rejection")
    with transaction.atomic():
        spec.lock(found[1])
        proposal = Proposal.objects.select_for_update().get(pk=proposal_id)
        _require_pending(proposal)
        _decide(proposal=proposal, state=Proposal.State.REJECTED, by=operator, reason=reason)
        audit_record(
            actor=operator,
            action="approvals.reject",
            obj=proposal,
            reason=reason,
            from_state=Proposal.State.PENDING,
            to_state=proposal.state,
            data={"kind": proposal.kind, "subject": proposal.subject, "proposed_by": proposal.proposed_by.email},
        )
    return proposal


def decisions_cancel(*, subject: str, actor: Actor, reason: str) -> int:
    """Cancel the pending proposals on a subject that moved on (e.g. a withdrawal the player cancelled)."""
    cancelled = 0
    for proposal in Proposal.objects.select_for_update().filter(subject=subject, state=Proposal.State.PENDING):
        proposal.state = Proposal.State.CANCELLED
        proposal.decision_reason = reason
        proposal.decided_at = timezone.now()
        proposal.save(update_fields=["state", "decision_reason", "decided_at"])
        audit_record(
            actor=actor,
            action="approvals.cancel",
            obj=proposal,
            reason=reason,
            from_state=Proposal.State.PENDING,
            to_state=proposal.state,
            data={"kind": proposal.kind, "subject": proposal.subject},
        )
        cancelled += 1
    return cancelled


def _require_pending(proposal: Proposal) -> None:
    if proposal.state != Proposal.State.PENDING:
        raise DecisionRefused(
            f"Proposal {proposal.pk} is already {proposal.state}. Nothing was changed.",
            extra={"proposal_id": proposal.pk, "state": proposal.state},
        )


def _approve(*, spec: DecisionKind, proposal: Proposal, operator: User, reason: object) -> Proposal:
    """The second pair of eyes: pending, a different operator (not a party), their own reason; then apply."""
    _require_pending(proposal)
    same_person = proposal.proposed_by_id == operator.pk
    if same_person and not (spec.self_approval_in_development and settings.ENVIRONMENT == "development"):
        raise SecondOperatorRequired(
            f"You proposed this ({_describe(proposal)}); a different operator must approve it. Nothing was changed.",
            extra={"proposal_id": proposal.pk},
        )
    _check_parties(operator=operator, parties=proposal.parties)
    _apply(spec=spec, proposal=proposal, checker=operator, reason=_checker_reason_given(reason, proposal))
    return proposal


def _apply(*, spec: DecisionKind, proposal: Proposal, checker: User, reason: str) -> None:
    """Apply in the checker's transaction; the checker's rows carry the checker's reason (`checker_reason`)."""
    proposal.decision_reason = reason  # what `checker_reason` answers while the kind's `apply` runs
    result = spec.apply(proposal, checker)
    _decide(proposal=proposal, state=Proposal.State.APPLIED, by=checker, reason=reason, result=result)
    audit_record(
        actor=checker,
        action="approvals.apply",
        obj=proposal,
        reason=reason,
        from_state=Proposal.State.PENDING,
        to_state=proposal.state,
        data={
            "kind": proposal.kind,
            "subject": proposal.subject,
            "payload": proposal.payload,
            "proposed_by": proposal.proposed_by.email,
            "proposal_reason": proposal.reason,
            "approved_by": checker.email,
            "approval_reason": reason,
            "needs_second_operator": proposal.needs_second_operator,
            "result": result,
        },
    )


def _decide(*, proposal: Proposal, state: str, by: User, reason: str, result: dict[str, Any] | None = None) -> None:
    proposal.state = state
    proposal.decided_by = by
    proposal.decision_reason = reason
    proposal.decided_at = timezone.now()
    proposal.result = result or {}
    proposal.save(update_fields=["state", "decided_by", "decision_reason", "decided_at", "result"])


def _describe(proposal: Proposal) -> str:
    detail = ", ".join(f"{k}={v}" for k, v in proposal.payload.items())
    return f"{decision_kind(proposal.kind).label}{': ' + detail if detail else ''}"


# --- Reads ---------------------------------------------------------------------------------


def proposals_for_subject(*, subject: str) -> list[Proposal]:
    """Every proposal on one subject, newest first (pending ones are what a second operator acts on)."""
    return list(Proposal.objects.filter(subject=subject).select_related("proposed_by", "decided_by").order_by("-id"))


def audit_trail_with_decisions(*, object_type: str, object_id: str, subject: str) -> list[Any]:
    """The audit records of an object and of the maker-checker proposals about it, in time order."""
    from django.db.models import Q

    from .models import AuditRecord

    proposal_ids = [str(pk) for pk in Proposal.objects.filter(subject=subject).values_list("pk", flat=True)]
    return list(
        AuditRecord.objects.filter(
            Q(object_type=object_type, object_id=object_id) | Q(object_type="ops.proposal", object_id__in=proposal_ids)
        ).order_by("id")
    )


def may_approve(*, proposal: Proposal, user: User | AnonymousUser) -> bool:
    """Whether this user may be the second pair of eyes on a pending proposal (the admin hides the button)."""
    if proposal.state != Proposal.State.PENDING or user.pk is None:
        return False
    spec = decision_kind(proposal.kind)
    if not user.has_perm(spec.permission) or user.pk in set(proposal.parties):
        return False
    if proposal.proposed_by_id == user.pk:
        return spec.self_approval_in_development and settings.ENVIRONMENT == "development"
    return True
