"""Login protection with django-axes: who is counted, and the audit record of each lockout.

Axes counts failed logins per (account, client address) on every path that calls
`django.contrib.auth.authenticate` (the API token login and the admin login); after
AXES_FAILURE_LIMIT failures that pair is locked out for AXES_COOLOFF_TIME, even with the right
password, until the time passes or an operator runs `unlock_login` (`accounts.services.login_unlock`).
"""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.dispatch import receiver

from ops.actors import SystemActor
from ops.audit import audit_record

AXES_SYSTEM = "axes"


def login_username(request: Any, credentials: dict[str, Any] | None) -> str:
    """Return the account name Axes counts: the email, trimmed and lower-cased as the login does."""
    value = (credentials or {}).get("username")
    if value is None and request is not None:
        value = getattr(request, "POST", {}).get("username")
    return str(value or "").strip().lower()[:254]


@receiver(user_locked_out, dispatch_uid="accounts.audit_lockout")
def audit_lockout(sender: Any, request: Any = None, username: str = "", ip_address: str = "", **kwargs: Any) -> None:
    """Record the failure that locks an account out (not every refused attempt during the lockout)."""
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is None or failures != settings.AXES_FAILURE_LIMIT:
        return
    audit_record(
        actor=SystemActor(AXES_SYSTEM),
        action="auth.lockout",
        object_type="accounts.user",
        object_id=username,
        reason=f"{failures} failed logins",
        to_state="locked",
        data={
            "username": username,
            "ip_address": ip_address,
            "path": getattr(request, "path", ""),
            "cooloff_s": int(settings.AXES_COOLOFF_TIME.total_seconds()),
        },
    )
