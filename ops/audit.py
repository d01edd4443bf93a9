"""Write business audit records in the caller's transaction."""

from __future__ import annotations

from typing import Any

from .logging import get_correlation_id
from .models import AuditRecord


def actor_label(actor: Any, system: str = "system") -> str:
    """Return a readable name for an actor: the user's email, or the system job's name."""
    if actor is None:
        return system
    return getattr(actor, "email", None) or str(actor)


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: Any = None,
    object_type: str = "",
    object_id: str = "",
    reason: str = "",
    from_state: str = "",
    to_state: str = "",
    data: dict[str, Any] | None = None,
    system: str = "system",
) -> AuditRecord:
    """Record one business action (call it inside the transaction that makes the change)."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    user = actor if getattr(actor, "pk", None) is not None and hasattr(actor, "email") else None
    return AuditRecord.objects.create(
        actor=user,
        actor_label=actor_label(actor, system),
        action=action,
        object_type=object_type,
        object_id=object_id,
        reason=reason,
        from_state=from_state,
        to_state=to_state,
        data=data or {},
        correlation_id=get_correlation_id(),
    )
