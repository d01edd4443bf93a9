"""Operator switches (maintenance, payout freeze, betting pause).

`switch_is_on` reads the database every time: the payouts and the bet read their switches (payout_freeze,
payout_auto_pause, betting_paused) inside the transaction that moves the money, and a stale answer there
would let money move after an operator stopped it. Only the request gate, the maintenance middleware,
reads through `switch_is_on_cached`: a switch turned on (or off) takes effect there within
`SWITCH_CACHE_S` (1 s by default, per process; `ops.ttl`), at once in the process that changed it,
which saves a query on every write request.

Turning a switch on is the one-operator emergency stop (`switch_set`). A failed ledger invariant turns
`payout_freeze` on by itself (`switch_trip`, in the transaction that records the breach); a switch tripped
that way stays on until two operators clear it: one proposes (`switch_clear_propose`), a different one
approves through the maker-checker (`ops.approvals`); the one-operator off is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import transaction

from .actors import Actor, require_operator
from .approvals import DecisionKind, checker_reason, decision_propose, register_decision
from .audit import actor_label, audit_record
from .errors import ApplicationError, ValidationFailed
from .models import Proposal, Switch
from .ttl import TtlCache

if TYPE_CHECKING:
    from accounts.models import User

CLEAR_KIND = "ops.switch_clear"
CLEAR_PERMISSION = "ops.change_switch"


class SwitchClearNeedsTwo(ApplicationError):
    code = "switches/clear-needs-two-operators"
    title = "This switch was turned on by a failed invariant; two operators must clear it"
    status = 409


class SwitchNotTripped(ApplicationError):
    code = "switches/not-tripped"
    title = "This switch was not turned on by a failed invariant"
    status = 409


def switch_is_on(name: str) -> bool:
    """Return whether the named switch is on, read from the database now (for reads that guard money)."""
    return Switch.objects.filter(name=name, on=True).exists()


_gate_reads: TtlCache[bool] = TtlCache(name="switches", ttl_setting="SWITCH_CACHE_S", max_entries=64)


def switch_is_on_cached(name: str) -> bool:
    """Return whether the named switch is on, as read at most `SWITCH_CACHE_S` seconds ago in this process.

    For request gates only (maintenance mode): a switch turned on (or off) takes effect within the bound.
    Never for a read that a money transaction relies on: use `switch_is_on` there.
    """
    return bool(_gate_reads.load(name, lambda: switch_is_on(name)))


def _gate_forget(name: str) -> None:
    """Drop this process's cached gate read of a switch being changed, now and once the change commits.

    So the process that changes a switch (the `switch` command, the admin, the approver) gates on the new
    value at once; the others within `SWITCH_CACHE_S`.
    """

    def forget() -> None:
        _gate_reads.discard(lambda key, _value: key == name)

    forget()
    transaction.on_commit(forget)


def switch_subject(name: str) -> str:
    """The maker-checker subject of clearing a switch."""
    return f"ops.switch:{name}"


def _known(name: str) -> str:
    if name not in Switch.Name.values:
        raise ValidationFailed(f"Unknown switch {name!r}; known: {', '.join(Switch.Name.values)}.")
    return name


def _lock(name: str) -> Switch:
    switch, _ = Switch.objects.select_for_update().get_or_create(name=_known(name))
    return switch


def _clear_refusal(switch: Switch) -> str:
    return (
        f"{switch.name} was turned on automatically by a failed ledger invariant ({switch.tripped_by}); "
        "one operator cannot turn it off. Clearing it takes two operators: propose it with "
        f'`python manage.py switch {switch.name} clear --reason "…" --operator <you>` (or the admin\'s '
        "Switches page), then a different operator approves the proposal. Nothing was changed."
    )


@transaction.atomic
def switch_set(*, name: str, on: bool, reason: str, actor: Any) -> Switch:
    """Turn a switch on or off, with a reason, recorded in the audit log.

    Turning off a switch a failed invariant turned on is refused (`SwitchClearNeedsTwo`): it takes two operators.
    """
    switch = _lock(name)
    if not on and switch.tripped_by:
        raise SwitchClearNeedsTwo(
            _clear_refusal(switch), extra={"switch": switch.name, "invariants": switch.tripped_by}
        )
    before = switch.on
    switch.on = on
    switch.reason = reason
    switch.changed_by = actor_label(actor)
    switch.save()
    _gate_forget(switch.name)
    audit_record(
        actor=actor,
        action=f"switch.{name}",
        obj=switch,
        reason=reason,
        from_state="on" if before else "off",
        to_state="on" if on else "off",
    )
    return switch


def switch_trip(*, name: str, invariants: Iterable[str], reason: str, actor: Actor, data: dict[str, Any]) -> Switch:
    """Turn a switch on because invariants failed, in the caller's transaction; audited with their names.

    The switch then stays on until two operators clear it (`switch_clear_propose`).
    """
    names = sorted(set(invariants))
    if not names:
        raise ValueError("switch_trip needs the names of the failed invariants")
    with transaction.atomic():
        switch = _lock(name)
        before = switch.on
        tripped = sorted(set(names) | ({n for n in switch.tripped_by.split(",") if n}))
        switch.on = True
        switch.tripped_by = ",".join(tripped)[:500]
        switch.reason = reason
        switch.changed_by = actor_label(actor)
        switch.save()
        _gate_forget(switch.name)
        audit_record(
            actor=actor,
            action=f"switch.{name}",
            obj=switch,
            reason=reason,
            from_state="on" if before else "off",
            to_state="on",
            data={**data, "invariants": names, "automatic": True},
        )
    return switch


def switch_clear_propose(*, name: str, reason: str, acting_user: object) -> Proposal:
    """Propose clearing a switch a failed invariant turned on; a different operator's approval clears it."""
    require_operator(acting_user, permission=CLEAR_PERMISSION, what="clear an automatic switch")
    with transaction.atomic():
        switch = _lock(name)
        if not switch.tripped_by:
            raise SwitchNotTripped(
                f"{switch.name} was not turned on by a failed invariant; `switch {switch.name} off` clears it. "
                "Nothing was changed."
            )
        return decision_propose(
            kind=CLEAR_KIND,
            subject=switch_subject(switch.name),
            payload={"switch": switch.name},
            amounts={},
            parties=[],
            reason=reason,
            evidence=f"turned on automatically: {switch.reason}",
            acting_user=acting_user,
            always_two=True,
        )


def _apply_clear(proposal: Proposal, checker: User) -> dict[str, Any]:
    """Turn the switch off (the approver's transaction), audited with both operators and the invariants."""
    switch = _lock(proposal.payload["switch"])
    if not switch.tripped_by:
        raise SwitchNotTripped(f"{switch.name} is no longer held by a failed invariant. Nothing was changed.")
    invariants = switch.tripped_by
    before = switch.on
    switch.on = False
    switch.tripped_by = ""
    switch.reason = proposal.reason
    switch.changed_by = f"{proposal.proposed_by.email} + {checker.email}"
    switch.save()
    _gate_forget(switch.name)
    audit_record(
        actor=checker,
        action=f"switch.{switch.name}",
        obj=switch,
        reason=checker_reason(proposal),
        from_state="on" if before else "off",
        to_state="off",
        data={
            "invariants": invariants.split(","),
            "proposal": proposal.pk,
            "proposed_by": proposal.proposed_by.email,
            "proposal_reason": proposal.reason,
            "approved_by": checker.email,
        },
    )
    return {"switch": switch.name, "on": switch.on, "invariants": invariants}


def register_switch_decisions() -> None:
    """Offer clearing an automatic switch to the maker-checker: always two operators."""
    register_decision(
        DecisionKind(
            name=CLEAR_KIND,
            label="clear a switch a failed invariant turned on",
            permission=CLEAR_PERMISSION,
            lock=lambda subject: _lock(subject.split(":", 1)[1]),
            apply=_apply_clear,
            always_two=True,
        )
    )
