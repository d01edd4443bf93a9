"""Write business audit records in the caller's transaction."""

from __future__ import annotations

from typing import Any

from .actors import Actor, actor_label, actor_user, require_actor
from .logging import get_correlation_id
from .models import AuditRecord

__all__ = ["actor_label", "audit_record"]


def audit_record(
    *,
    actor: Actor,
    action: str,
    obj: Any = None,
    object_type: str = "",
    object_id: str = "",
    reason: str = "",
    from_state: str = "",
    to_state: str = "",
    data: dict[str, Any] | None = None,
) -> AuditRecord:
    """Record one business action (call it inside the transaction that makes the change)."""
    require_actor(actor)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    return AuditRecord.objects.create(
        actor=actor_user(actor),
        actor_label=actor_label(actor),
        action=action,
        object_type=object_type,
        object_id=object_id,
        reason=reason,
        from_state=from_state,
        to_state=to_state,
        data=data or {},
        correlation_id=get_correlation_id(),
    )
