"""The ledger's manual decisions under maker-checker: adjustments and operator credits.

Both go through `ops.approvals`: one operator proposes (nothing moves), a different operator
approves, and the approval posts one journal in the approver's transaction. An adjustment below
its currencies' four-eyes thresholds needs one operator; an operator credit always needs two, except
on a developer's machine (`ENVIRONMENT=development`), where the proposer may approve it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model

from ops.actors import require_player
from ops.approvals import DecisionKind, checker_reason, decision_propose, register_decision
from ops.models import Proposal
from ops.validation import amount_u_check

from .currencies import get_currency
from .errors import InvalidAccount, InvalidAmount
from .models import Account
from .services import Leg, _validate_legs, journal_post, operator_credit

if TYPE_CHECKING:
    from accounts.models import User

ADJUSTMENT_KIND = "ledger.adjustment"
CREDIT_KIND = "ledger.operator_credit"


def _no_subject_lock(subject: str) -> None:
    """Each proposal is its own subject; the posting locks the accounts it touches."""


# --- Adjustments ---------------------------------------------------------------------------


def _adjustment_legs(legs: Sequence[tuple[int, int]]) -> list[Leg]:
    accounts = Account.objects.in_bulk([account_id for account_id, _ in legs])
    missing = [account_id for account_id, _ in legs if account_id not in accounts]
    if missing:
        raise InvalidAccount(f"No account with id {missing[0]}. Nothing was changed.")
    resolved = [Leg(accounts[account_id], amount_u) for account_id, amount_u in legs]
    _validate_legs(resolved)
    return resolved


def adjustment_propose(*, legs: Sequence[tuple[int, int]], reason: str, acting_user: object) -> Proposal:
    """Propose a correction of (account_id, amount_u) legs that balance per currency.

    Applied at once when every currency's total is within its four-eyes threshold; otherwise it waits
    for a second operator (`ops.approvals.decision_approve`).
    """
    resolved = _adjustment_legs(legs)
    amounts: dict[str, int] = defaultdict(int)
    for leg in resolved:
        if leg.amount_u > 0:
            amounts[leg.account.currency] += leg.amount_u
    parties = {leg.account.owner_id for leg in resolved if leg.account.owner_id is not None}
    return decision_propose(
        kind=ADJUSTMENT_KIND,
        subject=f"ledger.adjustment:{uuid.uuid4()}",
        payload={"legs": [{"account_id": leg.account.pk, "amount_u": leg.amount_u} for leg in resolved]},
        amounts=dict(amounts),
        parties=parties,
        reason=reason,
        acting_user=acting_user,
    )


def _apply_adjustment(proposal: Proposal, checker: User) -> dict[str, Any]:
    legs = _adjustment_legs([(leg["account_id"], leg["amount_u"]) for leg in proposal.payload["legs"]])
    journal = journal_post(
        type="adjustment",
        reference=f"adjustment:{proposal.pk}",
        legs=legs,
        actor=checker,
        metadata={"reason": proposal.reason, "proposal": proposal.pk, "proposed_by": proposal.proposed_by.email},
    )
    return {"journal": journal.reference}


# --- Operator credits ----------------------------------------------------------------------


def operator_credit_propose(
    *, user: object, amount_u: int, currency: str, reason: str, acting_user: object, reference: str = ""
) -> Proposal:
    """Propose crediting a player's available balance by hand; a second operator applies it."""
    player = require_player(user)
    get_currency(currency)
    amount_u_check(amount_u, error=InvalidAmount)  # a credit is positive
    return decision_propose(
        kind=CREDIT_KIND,
        subject=f"ledger.operator_credit:{uuid.uuid4()}",
        payload={
            "user": str(player.public_id),
            "amount_u": amount_u,
            "currency": currency,
            "reference": reference.strip(),
        },
        amounts={currency: amount_u},
        parties=[player.pk],
        reason=reason,
        acting_user=acting_user,
    )


def _apply_credit(proposal: Proposal, checker: User) -> dict[str, Any]:
    payload = proposal.payload
    user = get_user_model().objects.get(public_id=payload["user"])
    journal = operator_credit(
        user=user,
        amount_u=payload["amount_u"],
        currency=payload["currency"],
        actor=checker,
        reference=payload.get("reference") or f"operator-credit:{proposal.pk}",
        reason=proposal.reason,
        audit_reason=checker_reason(proposal),
        audit_data={
            "proposal": proposal.pk,
            "proposed_by": proposal.proposed_by.email,
            "proposal_reason": proposal.reason,
            "approved_by": checker.email,
        },
    )
    return {"journal": journal.reference, "replayed": journal.replayed}


def register_ledger_decisions() -> None:
    """Offer adjustments and operator credits to the maker-checker."""
    register_decision(
        DecisionKind(
            name=ADJUSTMENT_KIND,
            label="adjust the ledger",
            permission="ledger.post_adjustment",
            lock=_no_subject_lock,
            apply=_apply_adjustment,
        )
    )
    register_decision(
        DecisionKind(
            name=CREDIT_KIND,
            label="credit a player",
            permission="ledger.credit_player",
            lock=_no_subject_lock,
            apply=_apply_credit,
            always_two=True,
            self_approval_in_development=True,
        )
    )
