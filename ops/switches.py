"""Operator switches (maintenance, payout freeze, betting pause): read fresh every time."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .audit import actor_label, audit_record
from .models import Switch


def switch_is_on(name: str) -> bool:
    """Return whether the named switch is on."""
    return Switch.objects.filter(name=name, on=True).exists()


@transaction.atomic
def switch_set(*, name: str, on: bool, reason: str, actor: Any) -> Switch:
    """Turn a switch on or off, with a reason, recorded in the audit log."""
    if name not in Switch.Name.values:
        from .errors import ValidationFailed

        raise ValidationFailed(f"Unknown switch {name!r}; known: {', '.join(Switch.Name.values)}.")
    switch, _ = Switch.objects.select_for_update().get_or_create(name=name)
    before = switch.on
    switch.on = on
    switch.reason = reason
    switch.changed_by = actor_label(actor)
    switch.save()
    audit_record(
        actor=actor,
        action=f"switch.{name}",
        obj=switch,
        reason=reason,
        from_state="on" if before else "off",
        to_state="on" if on else "off",
    )
    return switch
