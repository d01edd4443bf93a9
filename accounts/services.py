"""Writes for accounts: API tokens and session invalidation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from ops.audit import audit_record
from ops.errors import ApplicationError


class InvalidCredentials(ApplicationError):
    code = "auth/invalid-credentials"
    title = "Invalid email or password"
    status = 401


def token_login(*, email: str, password: str, request: Any = None) -> tuple[str, datetime | None, Any]:
    """Check the credentials and issue an expiring API token (stored hashed)."""
    user = authenticate(request, username=(email or "").strip().lower(), password=password)
    if user is None or not user.is_active:
        raise InvalidCredentials("The email or password is not right.")
    instance, token = AuthToken.objects.create(user=user)
    return token, instance.expiry, user


@transaction.atomic
def sessions_invalidate(*, user: Any = None, acting_user: Any, reason: str) -> dict[str, int]:
    """Log out every session and API token, or one user's; recorded in the audit log."""
    if user is None:
        sessions = Session.objects.count()
        Session.objects.all().delete()
        tokens, _ = AuthToken.objects.all().delete()
    else:
        sessions = 0
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
            if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
                session.delete()
                sessions += 1
        tokens, _ = AuthToken.objects.filter(user=user).delete()
    counts = {"sessions": sessions, "tokens": tokens}
    audit_record(
        actor=acting_user, action="auth.invalidate_sessions", object_type="accounts.user",
        object_id=str(user.pk) if user else "*", reason=reason, data=counts,
    )
    return counts
