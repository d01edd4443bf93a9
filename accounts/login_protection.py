"""Login protection with django-axes: who is counted, the per-account limit, and the audit of each lockout.

Axes counts failed logins per (account, client address) on every path that calls
`django.contrib.auth.authenticate` (the API token login and the admin login). Two limits apply:

- per address: after AXES_FAILURE_LIMIT failures for one account from one address, that pair is
  locked out (the account still logs in from elsewhere);
- per account: after LOGIN_ACCOUNT_FAILURE_LIMIT failures for one account summed over every
  address (a spread attack: many addresses, a few guesses each), the account is locked out from
  every address.

Either lockout refuses even the right password until AXES_COOLOFF_TIME has passed since the failures
that count, or an operator runs `unlock_login` (`accounts.services.login_unlock`). Each lockout is
audited once (`auth.lockout`, with its scope, the account and the addresses; never a password), and
the console lists the current ones (`current_lockouts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.dispatch import receiver
from django.utils import timezone

from ops.actors import SystemActor
from ops.audit import audit_record

AXES_SYSTEM = "axes"
SCOPE_ADDRESS = "address"
SCOPE_ACCOUNT = "account"
MAX_AUDITED_ADDRESSES = 50


def login_username(request: Any, credentials: dict[str, Any] | None) -> str:
    """Return the account name Axes counts: the email, trimmed and lower-cased as the login does."""
    value = (credentials or {}).get("username")
    if value is None and request is not None:
        value = getattr(request, "POST", {}).get("username")
    return str(value or "").strip().lower()[:254]


def _attempts() -> Any:
    from axes.models import AccessAttempt

    return AccessAttempt.objects


def _threshold(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - settings.AXES_COOLOFF_TIME


def account_failures(username: str, *, now: datetime | None = None) -> int:
    """Failed logins for one account within the cool-off, summed over every client address."""
    if not username:
        return 0
    total = (
        _attempts()
        .filter(username=username, attempt_time__gte=_threshold(now))
        .aggregate(n=Sum("failures_since_start"))["n"]
    )
    return int(total or 0)


class AccountAwareAxesHandler(AxesDatabaseHandler):
    """Axes' database handler, plus a lockout per account over every address (LOGIN_ACCOUNT_FAILURE_LIMIT).

    Axes' own lockout parameters stay (account, address): one failure limit, per pair. The account's
    total is counted from the same rows, so `unlock_login` (which deletes them) lifts both.
    """

    def is_locked(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        if super().is_locked(request, credentials):
            request.axes_lockout_scope = SCOPE_ADDRESS
            return True
        username = login_username(request, credentials)
        if account_failures(username, now=getattr(request, "axes_attempt_time", None)) >= int(
            settings.LOGIN_ACCOUNT_FAILURE_LIMIT
        ):
            request.axes_lockout_scope = SCOPE_ACCOUNT
            return True
        return False

    def user_login_failed(self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
        already_locked = bool(getattr(request, "axes_locked_out", False))
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        if request is None or already_locked:
            return  # a refused attempt during a lockout is not counted (nor audited again)
        username = login_username(request, credentials)
        total = account_failures(username, now=getattr(request, "axes_attempt_time", None))
        request.axes_account_failures = total
        if getattr(request, "axes_locked_out", False):
            request.axes_lockout_scope = getattr(request, "axes_lockout_scope", SCOPE_ADDRESS)
        if total >= int(settings.LOGIN_ACCOUNT_FAILURE_LIMIT):
            if not getattr(request, "axes_locked_out", False):
                request.axes_locked_out = True
                request.axes_credentials = credentials
            request.axes_lockout_scope = SCOPE_ACCOUNT
            if not _account_lockout_audited(username, getattr(request, "axes_attempt_time", None)):
                audit_account_lockout(request=request, username=username, failures=total)


def _account_lockout_audited(username: str, now: datetime | None = None) -> bool:
    """Whether this account lockout is already audited: the account's latest lockout or unlock record within
    the cool-off is an account lockout (two failures racing past the limit are audited once, and a lockout
    after an operator's unlock is audited again)."""
    from ops.models import AuditRecord

    latest = (
        AuditRecord.objects.filter(
            object_type="accounts.user",
            object_id=username,
            action__in=("auth.lockout", "auth.unlock"),
            created_at__gte=_threshold(now),
        )
        .order_by("-created_at", "-id")
        .values_list("action", "data")
        .first()
    )
    return latest is not None and latest[0] == "auth.lockout" and (latest[1] or {}).get("scope") == SCOPE_ACCOUNT


def _addresses(username: str, now: datetime | None = None) -> list[str]:
    rows = (
        _attempts()
        .filter(username=username, attempt_time__gte=_threshold(now))
        .values_list("ip_address", flat=True)
        .distinct()
    )
    return sorted(a for a in rows if a)[:MAX_AUDITED_ADDRESSES]


def audit_account_lockout(*, request: Any, username: str, failures: int) -> None:
    """Record the failure that locks an account out from every address (once per lockout)."""
    addresses = _addresses(username, getattr(request, "axes_attempt_time", None))
    audit_record(
        actor=SystemActor(AXES_SYSTEM),
        action="auth.lockout",
        object_type="accounts.user",
        object_id=username,
        reason=f"{failures} failed logins from {len(addresses)} address(es)",
        to_state="locked",
        data={
            "scope": SCOPE_ACCOUNT,
            "username": username,
            "ip_address": getattr(request, "axes_ip_address", ""),
            "addresses": addresses,
            "failures": failures,
            "path": getattr(request, "path", ""),
            "cooloff_s": int(settings.AXES_COOLOFF_TIME.total_seconds()),
        },
    )


@receiver(user_locked_out, dispatch_uid="accounts.audit_lockout")
def audit_lockout(sender: Any, request: Any = None, username: str = "", ip_address: str = "", **kwargs: Any) -> None:
    """Record the failure that locks an account out for one address (not every refused attempt after it)."""
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
            "scope": SCOPE_ADDRESS,
            "username": username,
            "ip_address": ip_address,
            "addresses": [ip_address] if ip_address else [],
            "failures": failures,
            "path": getattr(request, "path", ""),
            "cooloff_s": int(settings.AXES_COOLOFF_TIME.total_seconds()),
        },
    )


@dataclass(frozen=True)
class Lockout:
    """A current lockout, as the console lists it."""

    username: str
    scope: str  # SCOPE_ACCOUNT (every address) or SCOPE_ADDRESS (some addresses only)
    failures: int
    addresses: int
    last_failure: datetime
    until: datetime


def current_lockouts(*, now: datetime | None = None, limit: int = 50) -> list[Lockout]:
    """The accounts locked out now, per account or for some addresses; one grouped query, newest first."""
    now = now or timezone.now()
    pair_limit = int(settings.AXES_FAILURE_LIMIT)
    account_limit = int(settings.LOGIN_ACCOUNT_FAILURE_LIMIT)
    rows = (
        _attempts()
        .filter(attempt_time__gte=_threshold(now))
        .values("username")
        .annotate(
            total=Sum("failures_since_start"),
            worst=Max("failures_since_start"),
            n_addresses=Count("ip_address", distinct=True),
            last=Max("attempt_time"),
        )
        .filter(Q(total__gte=account_limit) | Q(worst__gte=pair_limit))
        .order_by("-last", "username")[:limit]
    )
    return [
        Lockout(
            username=row["username"] or "",
            scope=SCOPE_ACCOUNT if row["total"] >= account_limit else SCOPE_ADDRESS,
            failures=int(row["total"]),
            addresses=int(row["n_addresses"]),
            last_failure=row["last"],
            until=row["last"] + settings.AXES_COOLOFF_TIME,
        )
        for row in rows
    ]
