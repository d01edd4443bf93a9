"""Writes for accounts: API tokens and session invalidation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from ops.audit import audit_record
from ops.errors import ApplicationError

from .authentication import tokens_forget


class InvalidCredentials(ApplicationError):
    code = "auth/invalid-credentials"
    title = "Invalid email or password"
    status = 401


class LoginLockedOut(ApplicationError):
    code = "auth/locked-out"
    title = "Too many failed logins"
    status = 429


def token_login(*, email: str, password: str, request: Any = None) -> tuple[str, datetime | None, Any]:
    """Check the credentials and issue an expiring API token (stored hashed).

    django-axes counts failures per account and address, and per account over every address
    (`accounts.login_protection`); a locked-out pair or account is refused with 429 even with the
    right password. A user holds at most
    REST_KNOX["TOKEN_LIMIT_PER_USER"] live tokens: a new login revokes the oldest ones beyond it.
    """
    user = authenticate(request, username=(email or "").strip().lower(), password=password)
    if getattr(request, "axes_locked_out", False):
        minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
        where = "" if getattr(request, "axes_lockout_scope", "") == "account" else " from this address"
        raise LoginLockedOut(
            f"Too many failed logins for this account{where}; try again in {minutes} minutes "
            "or ask an operator to unlock it."
        )
    if user is None or not user.is_active:
        raise InvalidCredentials("The email or password is not right.")
    token, expiry = token_issue(user=user)
    # As Django's login() does: last_login, and django-axes clears this pair's earlier failures.
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    return token, expiry, user


@transaction.atomic
def token_issue(*, user: Any) -> tuple[str, datetime | None]:
    """Issue a token, first revoking the user's oldest live tokens so the per-user limit holds."""
    limit = int(settings.REST_KNOX["TOKEN_LIMIT_PER_USER"])
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # one login at a time per user
    AuthToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()
    live = list(AuthToken.objects.filter(user=user).order_by("-created", "-pk").values_list("pk", flat=True))
    if len(live) >= limit:
        AuthToken.objects.filter(pk__in=live[limit - 1 :]).delete()
    instance, token = AuthToken.objects.create(user=user)
    return token, instance.expiry


@transaction.atomic
def login_unlock(*, username: str, ip_address: str | None = None, acting_user: Any, reason: str) -> int:
    """Lift django-axes lockouts of one account (from one address, or all); audited. Returns the count."""
    from axes.models import AccessAttempt

    username = (username or "").strip().lower()
    attempts = AccessAttempt.objects.filter(username=username)
    if ip_address:
        attempts = attempts.filter(ip_address=ip_address)
    addresses = sorted({a for a in attempts.values_list("ip_address", flat=True) if a})
    count, _ = attempts.delete()
    audit_record(
        actor=acting_user,
        action="auth.unlock",
        object_type="accounts.user",
        object_id=username,
        reason=reason,
        from_state="locked",
        to_state="unlocked",
        data={"username": username, "ip_address": ip_address or "*", "addresses": addresses, "attempts": count},
    )
    return count


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
    tokens_forget(user_id=user.pk if user is not None else None)  # the other processes: within the bound
    counts = {"sessions": sessions, "tokens": tokens}
    audit_record(
        actor=acting_user,
        action="auth.invalidate_sessions",
        object_type="accounts.user",
        object_id=str(user.pk) if user else "*",
        reason=reason,
        data=counts,
    )
    return counts
